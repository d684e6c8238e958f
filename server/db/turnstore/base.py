"""What the turn pipeline asks of storage, whichever database it runs on (`TurnStore`), and its records.

`accept` and `finish` take batches (group commit: the turns accepted in one event-loop
iteration share a statement) with at most one item per user, so a user's seqs are taken once
per statement. Every writer locks the user's row before any other row of theirs: one lock order,
no deadlocks. Whether a conversation is busy is decided here, by the `turns` registry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from server.db.outbox import PendingEvent
from server.frametext import FrameText


class AcceptStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    """This `client_msg_id` was accepted before: the result names the original (a retry)."""
    BUSY = "busy"
    """Another turn runs in the conversation."""
    LIMITED = "limited"
    """The user already runs as many turns as allowed at once."""
    NOT_FOUND = "not_found"
    """No such conversation (or user) for this user."""
    RETRY = "retry"
    """The user's data changed while the statement waited for their row: submit it again."""


@dataclass(slots=True)
class AcceptItem:
    user_id: int
    conversation_id: int | None
    """None: start a new conversation titled `title`."""
    title: str
    client_msg_id: str
    turn_id: str
    content: str
    created_at: datetime
    message_frame: FrameText
    """holes: seq, conversation id, message id, conversation id"""
    start_frame: FrameText
    """holes: seq, conversation id"""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """What the agent's history needs of a stored message."""

    role: str
    content: str
    status: str | None
    tool_call: dict[str, Any] | None


@dataclass(slots=True)
class Accepted:
    status: AcceptStatus
    conversation_id: int | None = None
    message_id: int | None = None
    seq: int | None = None
    """The seq of the user's `message` event (the ack's); `turn.start` has the next one."""
    turn_id: str | None = None
    events: list[PendingEvent] = field(default_factory=list)
    """`message` and `turn.start`, committed, for publishing."""
    history: list[HistoryRow] | None = None
    """The conversation's messages before this one, oldest first; None: read them with `history()`."""
    timezone: str = "UTC"
    """The user's IANA zone, read with their locked row: the assistant resolves "tomorrow at 9" in it."""


@dataclass(slots=True)
class FinishItem:
    user_id: int
    conversation_id: int
    turn_id: str
    content: str
    status: str
    created_at: datetime
    message_frame: FrameText
    """holes: seq, conversation id, message id, conversation id"""
    end_frame: FrameText
    """holes: seq, message id"""


@dataclass(slots=True)
class Finished:
    ended: bool
    user_id: int = 0
    """False: the turn was no longer registered (its conversation was deleted, or it was ended as
    interrupted by another worker): nothing was written."""
    message_id: int | None = None
    seq: int | None = None
    events: list[PendingEvent] = field(default_factory=list)
    """The reply's `message` and `turn.end`, committed, for publishing."""


@dataclass(slots=True)
class ToolItem:
    """A tool call of a running turn (`tool.call`, before the tool runs) or its result (`tool.result`, with
    the `tool` message that keeps it in the conversation's history)."""

    user_id: int
    turn_id: str
    kind: Literal["tool.call", "tool.result"]
    created_at: datetime
    frame: FrameText
    """holes: seq"""
    content: str | None = None
    """The result's message text (the result as JSON); None: no message (a call)."""
    tool_call: dict[str, Any] | None = None
    """The result's message record: {"id", "name", "arguments", "result"}."""


@dataclass(frozen=True, slots=True)
class OrphanTurn:
    """A running turn whose worker's lease ran out."""

    turn_id: str
    user_id: int
    conversation_id: int
    worker_id: str
    partial_reply: str
    last_heard: datetime | None = None
    """The worker's last heartbeat; None when its row is gone too."""


class TurnStore(Protocol):
    async def commit(
        self, accepts: Sequence[AcceptItem], finishes: Sequence[FinishItem], *, worker_id: str, max_concurrent: int
    ) -> tuple[list[Accepted], list[Finished]]:
        """In one transaction (one statement on PostgreSQL): store each user message with its events
        and register its turn, and store each reply with its `message` and `turn.end` events and
        unregister its turn. The users of `accepts` and `finishes` are all different."""

    async def accept(self, items: Sequence[AcceptItem], *, worker_id: str, max_concurrent: int) -> list[Accepted]:
        """`commit` with accepts only."""

    async def finish(self, items: Sequence[FinishItem]) -> list[Finished]:
        """`commit` with finishes only."""

    async def record_tool(self, item: ToolItem) -> PendingEvent | None:
        """In one transaction (one statement on PostgreSQL), under the user's row lock: log the event with the
        user's next seq and, for a result, store its `tool` message. None when the turn is no longer
        registered (ended elsewhere, its conversation deleted): nothing is written."""

    async def history(self, conversation_id: int, *, limit: int, before_id: int | None = None) -> list[HistoryRow]:
        """The newest `limit` messages (before `before_id`), oldest first."""

    async def turn_reply(self, turn_id: str) -> tuple[str, str, list[dict[str, Any]]] | None:
        """A finished turn's (status, reply text, tool calls), or None while it has no reply."""

    async def turn_exists(self, user_id: int, turn_id: str) -> bool:
        """Whether `user_id` started `turn_id` (running or not)."""

    async def accepted_before(self, user_id: int, client_msg_id: str) -> bool:
        """Whether a message with this `client_msg_id` of the user is stored (a retry)."""

    async def register_worker(self, worker_id: str) -> None: ...

    async def heartbeat(self, worker_id: str) -> bool:
        """Renew the worker's lease; False if the lease was lost."""

    async def checkpoint(self, worker_id: str, partials: Mapping[str, str]) -> None:
        """Save the partial replies (by turn id) of the worker's running turns. A statement of its
        own: a checkpoint the database refuses must not stop the lease from being renewed."""

    async def unregister_worker(self, worker_id: str) -> None: ...

    async def orphans(self, worker_id: str, *, lease_seconds: float, limit: int) -> list[OrphanTurn]:
        """Turns of other workers whose lease ran out (`lease_seconds` < 0: every other worker's)."""

    async def forget_dead_workers(self, *, lease_seconds: float) -> None:
        """Drop the rows of expired workers that have no turns left."""

    async def close(self) -> None: ...


def reply_of(rows: list[tuple[str, str, str | None, Any]]) -> tuple[str, str, list[dict[str, Any]]] | None:
    """A turn's reply row and tool rows -> (status, text, tool calls as REST shows them)."""
    reply = next((row for row in rows if row[0] == "assistant"), None)
    if reply is None:
        return None
    calls = [
        {key: row[3][key] for key in ("name", "arguments", "result")} for row in rows if row[0] == "tool" and row[3]
    ]
    return reply[2] or "done", reply[1], calls

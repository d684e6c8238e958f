"""Turns as the client sees them: the reply assembled from deltas, tool calls, task events, the end.

A turn is known by its `turn_id` once acked. Events of a turn that is not known yet are kept
for a while: after a reconnect, the replay of a retried chat's events can arrive before the
ack that names its turn. Deltas are placed by `offset`, so a repeated one adds nothing and a
missed one leaves a gap that the final `message` (the persisted reply) fills.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ORPHAN_TURNS = 16
"""Frames of unknown turns are kept for this many turns (others may be another tab's)."""
TASK_EVENTS = ("task.created", "task.updated", "task.deleted")


def new_client_msg_id() -> str:
    return f"cli-{secrets.token_hex(8)}"


@dataclass
class ToolCallRecord:
    call_id: str
    name: str
    arguments: dict[str, Any]
    result: Any = None
    finished: bool = False


@dataclass(eq=False)
class Turn:
    """One message and the assistant's answer."""

    client_msg_id: str
    message: str
    conversation_id: int | None
    turn_id: str | None = None
    text: str = ""
    """The reply so far; it ends equal to the persisted reply."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    """`task.*` events that arrived while the turn ran."""
    status: str | None = None
    """done, cancelled or failed (the server's), or rejected (an `error` frame refused the chat)."""
    reason: str | None = None
    sent_on: int = 0
    """The connection it was last sent on (0: never). Once sent, the server may have it: it is only
    ever re-sent with the same `client_msg_id`, never dropped."""
    cancel_requested: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def sent(self) -> bool:
        return self.sent_on > 0

    def summary(self) -> dict[str, Any]:
        """The `send --json` object."""
        return {
            "conversation_id": self.conversation_id,
            "turn_id": self.turn_id,
            "status": self.status,
            "reason": self.reason,
            "response": self.text,
            "tool_calls": [{"name": c.name, "arguments": c.arguments, "result": c.result} for c in self.tool_calls],
            "events": self.events,
        }


class SessionView(Protocol):
    """What the session reports, as it happens; the terminal renders it."""

    def connection_lost(self, reason: str) -> None: ...
    def reconnected(self) -> None: ...
    def reply_delta(self, turn: Turn, text: str) -> None: ...
    def tool_finished(self, turn: Turn, call: ToolCallRecord) -> None: ...
    def task_event(self, frame: dict[str, Any], turn: Turn | None) -> None: ...
    def turn_ended(self, turn: Turn) -> None: ...
    def server_error(self, code: str, detail: str) -> None: ...
    def resync(self, reason: str) -> None: ...
    def reminder(self, frame: dict[str, Any]) -> None: ...


class TurnTracker:
    """Acked turns that have not ended, fed with their events; reports progress to the view."""

    def __init__(self, view: SessionView) -> None:
        self.view = view
        self._turns: dict[str, Turn] = {}
        self._orphans: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "delta": self._on_delta,
            "tool.call": self._on_tool_call,
            "tool.result": self._on_tool_result,
            "message": self._on_message,
            "turn.end": self._on_turn_end,
            **dict.fromkeys(TASK_EVENTS, self._on_task_event),
        }

    def running(self) -> list[Turn]:
        return list(self._turns.values())

    def handle(self, frame: dict[str, Any]) -> None:
        handler = self._handlers.get(str(frame.get("type")))
        if handler is not None:
            handler(frame)

    def track(self, turn: Turn) -> None:
        """`turn` was acked: follow it, starting with any of its events that came first."""
        assert turn.turn_id is not None
        self._turns[turn.turn_id] = turn
        for frame in self._orphans.pop(turn.turn_id, []):
            self.handle(frame)

    def end(self, turn: Turn, status: str, reason: str | None) -> None:
        if turn.status is not None:
            return
        turn.status, turn.reason = status, reason
        if turn.turn_id is not None:
            self._turns.pop(turn.turn_id, None)
        turn.ended.set()
        self.view.turn_ended(turn)

    def _turn_of(self, frame: dict[str, Any], turn_id: object) -> Turn | None:
        if not isinstance(turn_id, str):
            return None
        turn = self._turns.get(turn_id)
        if turn is None:
            self._orphans.setdefault(turn_id, []).append(frame)
            while len(self._orphans) > ORPHAN_TURNS:
                self._orphans.popitem(last=False)
        return turn

    def _on_delta(self, frame: dict[str, Any]) -> None:
        turn = self._turn_of(frame, frame.get("turn_id"))
        offset, text = frame.get("offset"), frame.get("text")
        if turn is None or not isinstance(offset, int) or not isinstance(text, str):
            return
        have = len(turn.text)  # code points, like `offset`
        if offset > have or offset + len(text) <= have:
            return  # a gap (deltas lost in a reconnect: the final message fills it) or a repeat
        new = text[have - offset :]
        turn.text += new
        self.view.reply_delta(turn, new)

    def _on_tool_call(self, frame: dict[str, Any]) -> None:
        turn = self._turn_of(frame, frame.get("turn_id"))
        if turn is not None:
            arguments = frame.get("arguments")
            turn.tool_calls.append(
                ToolCallRecord(
                    call_id=str(frame.get("call_id")),
                    name=str(frame.get("name")),
                    arguments=arguments if isinstance(arguments, dict) else {},
                )
            )

    def _on_tool_result(self, frame: dict[str, Any]) -> None:
        turn = self._turn_of(frame, frame.get("turn_id"))
        if turn is None:
            return
        call = next((c for c in turn.tool_calls if c.call_id == frame.get("call_id")), None)
        if call is not None and not call.finished:
            call.result, call.finished = frame.get("result"), True
            self.view.tool_finished(turn, call)

    def _on_message(self, frame: dict[str, Any]) -> None:
        message = frame.get("message")
        if not isinstance(message, dict) or message.get("role") != "assistant":
            return
        turn = self._turn_of(frame, message.get("turn_id"))
        content = message.get("content")
        if turn is None or not isinstance(content, str):
            return
        # The persisted reply is the truth: show what the deltas did not (some are lost in a reconnect).
        rest = content[len(turn.text) :] if content.startswith(turn.text) else "\n" + content
        turn.text = content
        if rest:
            self.view.reply_delta(turn, rest)

    def _on_turn_end(self, frame: dict[str, Any]) -> None:
        turn = self._turn_of(frame, frame.get("turn_id"))
        if turn is not None:
            reason = frame.get("reason")
            self.end(turn, str(frame.get("status")), reason if isinstance(reason, str) else None)

    def _on_task_event(self, frame: dict[str, Any]) -> None:
        running = next((turn for turn in self._turns.values() if turn.status is None), None)
        if running is not None:
            running.events.append({"type": frame["type"], "task": frame.get("task")})
        self.view.task_event(frame, running)

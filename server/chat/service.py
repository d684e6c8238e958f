"""One chat turn, shared by the WebSocket and REST: admit, persist the user's message, ack, start the reply.

Order of operations, and why:

1. Admission: a bounded number of turns in flight per worker; the excess is refused at once
   (`overloaded`), before any database or Redis work. Then the user's budget of turns
   (RATE_LIMIT_CHAT_TURNS, every worker counts in it) -> `rate_limited`, nothing persisted; a
   retry of an accepted message still gets its ack.
2. One statement (group commit: shared with the other messages of this loop iteration) stores
   the message and its `message` + `turn.start` events with the user's next seqs, and registers
   the turn: the database answers `busy` (a turn runs in the conversation), `duplicate` (this
   `client_msg_id` was accepted before: its original ack), or a refusal.
3. Only after commit: the ack, the turn starts in the background, then the events are published.

Steps 2 and 3 run in the batch, not in the caller: a caller that goes away (a socket closing)
cannot leave a committed message without its ack being decided and its turn started.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from server import metrics, protocol
from server.abuse import Limits
from server.chat.admission import Admission
from server.chat.batching import AGAIN, Again
from server.chat.turns import Turn, TurnRegistry
from server.chat.writer import TurnWriter
from server.db.conversations import title_from
from server.db.models import utcnow
from server.db.turnstore.base import Accepted, AcceptItem, AcceptStatus, TurnStore
from server.errors import BusyError, NotFoundError, RateLimitedError
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub

AckCallback = Callable[[protocol.Ack], None]
CONCURRENT_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    conversation_id: int
    status: str
    response: str
    tool_calls: list[dict[str, Any]]
    reason: str | None = None


@dataclass(slots=True)
class _Submit:
    item: AcceptItem
    on_ack: AckCallback | None
    ack: protocol.Ack | None = None
    started: bool = False


@dataclass(slots=True, eq=False)
class _TurnEndWaiter:
    """A hub subscriber that notices one turn's `turn.end` (for a REST call whose turn runs elsewhere)."""

    turn_id: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def deliver(self, envelope: Envelope) -> None:
        if envelope.seq is not None and '"turn.end"' in envelope.text:
            frame = orjson.loads(envelope.text)
            if frame.get("type") == "turn.end" and frame.get("turn_id") == self.turn_id:
                self.reason = frame.get("reason")
                self.ended.set()

    def catch_up(self) -> None:
        return None  # the caller reads the database after subscribing

    def control(self, message: dict[str, Any]) -> None:
        return None


def ack_of(result: Accepted, client_msg_id: str) -> protocol.Ack:
    assert result.conversation_id is not None and result.message_id is not None and result.seq is not None
    assert result.turn_id is not None
    return protocol.ack(
        client_msg_id=client_msg_id,
        conversation_id=result.conversation_id,
        message_id=result.message_id,
        turn_id=result.turn_id,
        seq=result.seq,
    )


class ChatService:
    def __init__(
        self,
        *,
        store: TurnStore,
        writer: TurnWriter,
        hub: Hub,
        turns: TurnRegistry,
        admission: Admission,
        limits: Limits,
    ) -> None:
        self._store = store
        self._limits = limits
        self._hub = hub
        self.turns = turns
        self.admission = admission
        self._writer = writer

    async def submit(
        self,
        user_id: int,
        *,
        conversation_id: int | None,
        text: str,
        client_msg_id: str,
        on_ack: AckCallback | None = None,
    ) -> protocol.Ack:
        """Accept one user message and start its turn; returns the ack (the same one for a retry)."""
        begun = time.perf_counter()
        self.admission.enter()
        try:
            await self._limits.chat_turn(user_id, is_retry=lambda: self._store.accepted_before(user_id, client_msg_id))
        except BaseException:
            self.admission.leave()
            raise
        now = utcnow()
        turn_id = secrets.token_hex(16)
        request = _Submit(
            item=AcceptItem(
                user_id=user_id,
                conversation_id=conversation_id,
                title=title_from(text),
                client_msg_id=client_msg_id,
                turn_id=turn_id,
                content=text,
                created_at=now,
                message_frame=protocol.message_event_text(
                    role="user", content=text, created_at=now, turn_id=turn_id, client_msg_id=client_msg_id
                ),
                start_frame=protocol.turn_start_text(turn_id),
            ),
            on_ack=on_ack,
        )
        future = self._writer.accept(request.item, lambda result: self._after_accept(request, result))
        # The slot goes with the turn when one starts; otherwise it is free once the batch decided.
        future.add_done_callback(lambda _: None if request.started else self.admission.leave())
        result = await asyncio.shield(future)
        assert isinstance(result, Accepted)
        if request.ack is not None:
            metrics.ACK_SECONDS.observe(time.perf_counter() - begun)
            return request.ack
        if result.status is AcceptStatus.BUSY:
            raise BusyError()
        if result.status is AcceptStatus.LIMITED:
            metrics.RATE_LIMITED.labels(limit="concurrent_turns").inc()
            raise RateLimitedError(
                "Too many replies are being generated at once; wait for one to finish",
                extra={"retry_after": CONCURRENT_RETRY_AFTER},
            )
        raise NotFoundError("Conversation not found")

    def _after_accept(self, request: _Submit, result: Accepted) -> Accepted | Again:
        """Right after the commit, in the writer's round: the ack, the turn's start, its first events."""
        if result.status is AcceptStatus.RETRY:
            return AGAIN
        item = request.item
        if result.status not in (AcceptStatus.ACCEPTED, AcceptStatus.DUPLICATE):
            return result
        request.ack = ack_of(result, item.client_msg_id)
        if request.on_ack is not None:
            request.on_ack(request.ack)  # queued on the socket before any of the turn's events
        if result.status is AcceptStatus.DUPLICATE:
            return result
        assert result.conversation_id is not None
        request.started = True
        self.turns.start(
            Turn(
                turn_id=item.turn_id,
                user_id=item.user_id,
                conversation_id=result.conversation_id,
                message=item.content,
                history=result.history or [],
                timezone=result.timezone,
            )
        )
        self._hub.publish(item.user_id, [Envelope(event.text, event.seq) for event in result.events])
        return result

    async def outcome(self, user_id: int, ack: protocol.Ack) -> TurnOutcome:
        """Wait for the acked turn to end, and its reply and tool calls.

        The turn runs here (await it), or, for a retried request, on another worker: then its
        `turn.end` arrives through the hub. Callers bound the wait with `asyncio.timeout`.
        """
        turn_id = ack["turn_id"]
        turn = self.turns.get(turn_id)
        if turn is not None:
            await turn.finished.wait()
            return TurnOutcome(
                conversation_id=ack["conversation_id"],
                status=turn.status,
                response=turn.text,
                tool_calls=list(turn.tool_calls),
                reason=turn.reason,
            )
        waiter = _TurnEndWaiter(turn_id)
        async with self._hub.interest(user_id, waiter):
            reply = await self._reply_of(turn_id)
            if reply is None:
                await waiter.ended.wait()
                reply = await self._reply_of(turn_id)
        status, response, calls = reply or ("failed", "", [])
        return TurnOutcome(
            conversation_id=ack["conversation_id"],
            status=status,
            response=response,
            tool_calls=calls,
            reason=waiter.reason,
        )

    async def _reply_of(self, turn_id: str) -> tuple[str, str, list[dict[str, Any]]] | None:
        reply = await self._store.turn_reply(turn_id)
        return reply

    async def cancel(self, user_id: int, turn_id: str) -> None:
        """Stop a running turn wherever it runs; `NotFoundError` if the user never started it."""
        if self.turns.cancel_local(user_id, turn_id):
            return
        if not await self._store.turn_exists(user_id, turn_id):
            raise NotFoundError("Turn not found")
        self.turns.cancel(user_id, turn_id)

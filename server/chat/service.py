"""One chat turn, shared by the WebSocket and REST: persist the user's message, ack, start the reply.

Order of operations, and why:

0. Count the turn in the user's budget (RATE_LIMIT_CHAT_TURNS, all workers) -> `rate_limited`
   before anything is persisted or any model called; a retry of an accepted message still gets its ack.
1. Take the conversation's turn lock (key per user) -> `busy` if another turn runs there, unless
   the holder is this very `client_msg_id` in flight, or it was accepted earlier: then its ack.
2. One transaction, the user's row locked first: user message + `message` and `turn.start`
   events with gap-free seqs; the conversation must be the user's (else 404, like a missing one).
   A unique-key violation means a retry: answer with the earlier ack, start no turn.
3. Only after commit: the ack, the turn starts in the background, then publishing.

All of it runs shielded from the caller's cancellation, so a committed message always has its turn.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from server.abuse import Limits
from server.chat.locks import TurnLocks
from server.chat.turns import Turn, TurnRegistry
from server.db import conversations, messages
from server.db.engine import Sessionmaker
from server.db.models import Message, utcnow
from server.db.outbox import transaction
from server.errors import BusyError, NotFoundError
from server.realtime import protocol
from server.realtime.hub import Hub
from server.schemas import message_frame

AckCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    conversation_id: int
    status: str
    response: str
    tool_calls: list[dict[str, Any]]
    reason: str | None = None
    """Why a failed turn failed (known when it ran in this process)."""


IN_FLIGHT_WAIT = 2.0
"""How long a duplicate waits for the original's commit before answering `busy`."""


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def lock_key(user_id: int, conversation_id: int) -> str:
    # The user is part of the key: someone guessing another user's conversation id takes a lock
    # nobody else uses (and then gets 404), instead of briefly making that conversation busy.
    return f"conversation:{user_id}:{conversation_id}"


def ack_of(message: Message) -> dict[str, Any]:
    assert message.id is not None and message.client_msg_id and message.turn_id and message.seq is not None
    return protocol.ack(
        client_msg_id=message.client_msg_id,
        conversation_id=message.conversation_id,
        message_id=message.id,
        turn_id=message.turn_id,
        seq=message.seq,
    )


class ChatService:
    def __init__(
        self,
        *,
        db: Sessionmaker,
        reads: Sessionmaker,
        hub: Hub,
        locks: TurnLocks,
        turns: TurnRegistry,
        lock_ttl: float,
        limits: Limits,
    ) -> None:
        self._limits = limits
        self._db = db
        self._reads = reads
        self._hub = hub
        self._locks = locks
        self.turns = turns
        self._lock_ttl = lock_ttl

    async def submit(
        self,
        user_id: int,
        *,
        conversation_id: int | None,
        text: str,
        client_msg_id: str,
        on_ack: AckCallback | None = None,
    ) -> dict[str, Any]:
        """Accept one user message and start its turn; returns the ack (the same one for a retry).

        A retry is recognised by the unique (user, client_msg_id) constraint rather than a
        look-up first: the common case costs no extra round trip.

        The work runs shielded from the caller's cancellation (a socket closing mid-way): a
        message is either refused, or committed with its turn started and its lock owned.

        First of all, the user's chat-turn budget (every worker counts in it): over it,
        `RateLimitedError` and nothing is persisted, unless this is a retry of a message
        accepted earlier, which gets its ack as always.
        """
        await self._limits.chat_turn(user_id, is_retry=lambda: self._accepted_before(user_id, client_msg_id))
        accept = asyncio.create_task(self._accept(user_id, conversation_id, text, client_msg_id, on_ack))
        accept.add_done_callback(_retrieve)  # if the caller is gone, its error is still consumed
        return await asyncio.shield(accept)

    async def _accept(
        self,
        user_id: int,
        conversation_id: int | None,
        text: str,
        client_msg_id: str,
        on_ack: AckCallback | None,
    ) -> dict[str, Any]:
        turn_id = secrets.token_hex(16)
        owner = f"{turn_id}:{client_msg_id}"
        if conversation_id is not None:
            key = lock_key(user_id, conversation_id)
            running = self.turns.running_in(key)
            # A turn of this worker holds it: answer without asking Redis (cheap refusals under load).
            holder = running.lock_owner if running else await self._locks.acquire(key, owner, self._lock_ttl)
            if holder is not None:
                return self._acked(await self._in_flight(user_id, client_msg_id, holder), on_ack)
        locked = conversation_id

        try:
            async with transaction(self._db, None) as outbox:
                session = outbox.session
                now = utcnow()
                # The user's row first, as in every writing transaction: one lock order, no deadlocks.
                seq = await outbox.reserve(user_id, 2)
                if conversation_id is None:
                    conversation_id = await conversations.insert(session, user_id, title=text, now=now)
                    # A brand-new conversation: nobody else can hold its lock yet.
                    await self._locks.acquire(lock_key(user_id, conversation_id), owner, self._lock_ttl)
                    locked = conversation_id
                elif not await conversations.touch(session, user_id, conversation_id, now=now):
                    raise NotFoundError("Conversation not found")
                row = {
                    "conversation_id": conversation_id,
                    "user_id": user_id,
                    "role": "user",
                    "content": text,
                    "client_msg_id": client_msg_id,
                    "turn_id": turn_id,
                    "seq": seq,
                    "created_at": now,
                }
                message_id = await messages.insert(session, row)
                row["id"] = message_id
                outbox.record(user_id, {**protocol.message(conversation_id, message_frame(row)), "seq": seq})
                outbox.record(user_id, {**protocol.turn_start(turn_id, conversation_id), "seq": seq + 1})
        except IntegrityError:
            # This client_msg_id was accepted before (a retry), or just now on another socket.
            if locked is not None:
                await self._locks.release(lock_key(user_id, locked), owner)
            async with self._reads() as session:
                existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is None:
                raise
            return self._acked(ack_of(existing), on_ack)
        except BaseException:
            if locked is not None:
                await self._locks.release(lock_key(user_id, locked), owner)
            raise

        ack = self._acked(
            protocol.ack(
                client_msg_id=client_msg_id,
                conversation_id=conversation_id,
                message_id=message_id,
                turn_id=turn_id,
                seq=seq,
            ),
            on_ack,
        )
        # Committed: the turn starts now, before anything else is awaited, so no cancellation of
        # the caller (a closing socket) can leave an accepted message without its reply.
        self.turns.start(
            Turn(
                turn_id=turn_id,
                user_id=user_id,
                conversation_id=conversation_id,
                lock_key=lock_key(user_id, conversation_id),
                lock_owner=owner,
            )
        )
        await outbox.publish(self._hub.publish_pending)
        return ack

    async def outcome(self, ack: dict[str, Any]) -> TurnOutcome:
        """Wait for the acked turn to end and read its reply and tool calls back from the database.

        The turn may run here (await it) or, for a retried request, on another worker (poll).
        Callers bound the wait with `asyncio.timeout`.
        """
        turn_id = str(ack["turn_id"])
        turn = self.turns.get(turn_id)
        if turn is not None:
            await turn.finished.wait()
        while True:
            async with self._reads() as session:
                reply = await messages.turn_reply(session, turn_id)
                calls = await messages.turn_tool_calls(session, turn_id) if reply is not None else []
            if reply is not None:
                break
            await asyncio.sleep(0.05)  # running on another worker: no event reaches us here
        return TurnOutcome(
            conversation_id=int(ack["conversation_id"]),
            status=reply.status or "done",
            response=reply.content,
            tool_calls=[
                {key: row.tool_call[key] for key in ("name", "arguments", "result")} for row in calls if row.tool_call
            ],
            reason=turn.reason if turn is not None else None,
        )

    async def cancel(self, user_id: int, turn_id: str) -> None:
        """Stop a running turn wherever it runs; `NotFoundError` if the user never started it."""
        if self.turns.cancel_local(user_id, turn_id):
            return
        async with self._reads() as session:
            if await messages.turn_request(session, user_id, turn_id) is None:
                raise NotFoundError("Turn not found")
        await self.turns.cancel(user_id, turn_id)

    async def _accepted_before(self, user_id: int, client_msg_id: str) -> bool:
        async with self._reads() as session:
            return await messages.by_client_msg_id(session, user_id, client_msg_id) is not None

    @staticmethod
    def _acked(ack: dict[str, Any], on_ack: AckCallback | None) -> dict[str, Any]:
        if on_ack is not None:
            on_ack(ack)
        return ack

    async def _in_flight(self, user_id: int, client_msg_id: str, holder: str) -> dict[str, Any]:
        """The conversation is locked. By this very message on another socket? Then share its ack."""
        if holder.partition(":")[2] != client_msg_id:  # owner = "<turn_id hex>:<client_msg_id>"
            # Busy with another turn, unless this message was accepted earlier (a late retry).
            async with self._reads() as session:
                existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is None:
                raise BusyError()
            return ack_of(existing)
        deadline = time.monotonic() + IN_FLIGHT_WAIT
        while time.monotonic() < deadline:
            async with self._reads() as session:
                existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is not None:
                return ack_of(existing)
            await asyncio.sleep(0.02)  # the other worker is between taking the lock and committing
        raise BusyError()

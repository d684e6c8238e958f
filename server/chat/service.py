"""One chat turn, shared by the WebSocket and REST: persist the user's message, ack, start the reply.

Order of operations, and why:

1. A message with the same `client_msg_id` exists -> answer with its ack (a retry): no new turn.
2. The conversation must be the user's (else 404, the same answer as a missing one).
3. Take the conversation's turn lock -> `busy` if another turn runs there (unless the holder is
   this very `client_msg_id` in flight on another socket: then wait for it and share its ack).
4. One transaction: user message + `message` and `turn.start` events, with gap-free seqs.
5. Only after commit: the ack, then publishing, then the turn starts in the background.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from server.chat.turns import Turn, TurnRegistry
from server.db import conversations, messages
from server.db.engine import Sessionmaker
from server.db.models import Message, utcnow
from server.errors import BusyError, NotFoundError
from server.realtime import protocol
from server.realtime.hub import Hub
from server.realtime.locks import TurnLocks
from server.realtime.outbox import transaction
from server.schemas import MessagePublic

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


def lock_key(conversation_id: int) -> str:
    return f"conversation:{conversation_id}"


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
    def __init__(self, *, db: Sessionmaker, hub: Hub, locks: TurnLocks, turns: TurnRegistry, lock_ttl: float) -> None:
        self._db = db
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
        """Accept one user message and start its turn; returns the ack (the same one for a retry)."""
        async with self._db() as session:
            existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is None and conversation_id is not None:
                await conversations.get(session, user_id, conversation_id)
        if existing is not None:
            return self._acked(ack_of(existing), on_ack)

        turn_id = secrets.token_hex(16)
        owner = f"{turn_id}:{client_msg_id}"
        if conversation_id is not None:
            holder = await self._locks.acquire(lock_key(conversation_id), owner, self._lock_ttl)
            if holder is not None:
                return self._acked(await self._in_flight(user_id, client_msg_id, holder), on_ack)
        locked = conversation_id

        try:
            async with transaction(self._db, self._hub, publish=False) as outbox:
                session = outbox.session
                if conversation_id is None:
                    conversation = await conversations.create(session, user_id, title=text)
                    assert conversation.id is not None
                    conversation_id = conversation.id
                    # A brand-new conversation: nobody else can hold its lock yet.
                    await self._locks.acquire(lock_key(conversation_id), owner, self._lock_ttl)
                    locked = conversation_id
                else:
                    conversation = await conversations.get(session, user_id, conversation_id)
                    conversation.updated_at = utcnow()
                seq = await outbox.reserve(user_id, 2)
                message = Message(
                    conversation_id=conversation_id,
                    user_id=user_id,
                    role="user",
                    content=text,
                    client_msg_id=client_msg_id,
                    turn_id=turn_id,
                    seq=seq,
                )
                session.add(message)
                await session.flush()
                outbox.record(user_id, {**protocol.message(conversation_id, MessagePublic.frame(message)), "seq": seq})
                outbox.record(user_id, {**protocol.turn_start(turn_id, conversation_id), "seq": seq + 1})
        except IntegrityError:
            # The same client_msg_id committed first on another socket or worker.
            if locked is not None:
                await self._locks.release(lock_key(locked), owner)
            async with self._db() as session:
                existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is None:
                raise
            return self._acked(ack_of(existing), on_ack)
        except BaseException:
            if locked is not None:
                await self._locks.release(lock_key(locked), owner)
            raise

        ack = self._acked(ack_of(message), on_ack)
        await outbox.publish(self._hub)
        self.turns.start(
            Turn(
                turn_id=turn_id,
                user_id=user_id,
                conversation_id=conversation_id,
                lock_key=lock_key(conversation_id),
                lock_owner=owner,
            )
        )
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
            async with self._db() as session:
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
        async with self._db() as session:
            if await messages.turn_request(session, user_id, turn_id) is None:
                raise NotFoundError("Turn not found")
        await self.turns.cancel(user_id, turn_id)

    @staticmethod
    def _acked(ack: dict[str, Any], on_ack: AckCallback | None) -> dict[str, Any]:
        if on_ack is not None:
            on_ack(ack)
        return ack

    async def _in_flight(self, user_id: int, client_msg_id: str, holder: str) -> dict[str, Any]:
        """The conversation is locked. By this very message on another socket? Then share its ack."""
        if not holder.endswith(f":{client_msg_id}"):
            raise BusyError()
        deadline = time.monotonic() + IN_FLIGHT_WAIT
        while time.monotonic() < deadline:
            async with self._db() as session:
                existing = await messages.by_client_msg_id(session, user_id, client_msg_id)
            if existing is not None:
                return ack_of(existing)
            await asyncio.sleep(0.02)  # the other worker is between taking the lock and committing
        raise BusyError()

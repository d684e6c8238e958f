"""Running turns: each is a task detached from any socket, owned by this process's `TurnRegistry`.

A turn streams the agent's reply as coalesced `delta` frames, persists every tool call, and
always ends by persisting the reply with its status (done, cancelled or failed) and a
`turn.end` event, then releasing the conversation's lock. Cancelling a turn cancels only its
inner generation task, so the persistence that follows cannot be interrupted by the cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from server.assistant.agent import Agent
from server.assistant.providers.base import ProviderError, ToolCallRequest
from server.chat.history import to_chat_messages
from server.chat.locks import TurnLocks
from server.db import conversations, messages
from server.db.engine import Sessionmaker, is_unavailable
from server.db.models import Message, utcnow
from server.db.outbox import Outbox, PendingEvent, transaction
from server.realtime import protocol
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub
from server.schemas import message_frame

logger = logging.getLogger(__name__)

FINISH_RETRY_FOR = 30.0
"""How long a finished turn keeps retrying to save its reply while the database is unavailable."""
DELTA_INTERVAL = 0.04
"""Coalescing window: at most ~25 `delta` frames a second per turn, whatever the model's token rate."""

ToolRunner = Callable[[Outbox, int, ToolCallRequest], Awaitable[Any]]
"""Executes one tool for a user inside the given transaction; returns the result."""


@dataclass(eq=False)
class Turn:
    turn_id: str
    user_id: int
    conversation_id: int
    lock_key: str
    lock_owner: str
    reply: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    lock_held: bool = True
    cancel_requested: bool = False
    reason: str | None = None
    message_id: int | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    generation: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.reply)


class DeltaStream:
    """Coalesces a turn's text into a few `delta` frames per 100 ms, published in order."""

    def __init__(self, hub: Hub, turn: Turn, *, interval: float = DELTA_INTERVAL) -> None:
        self._hub = hub
        self._turn = turn
        self._interval = interval
        self._pending: list[str] = []
        self._offset = 0
        self._dirty = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None

    def push(self, text: str) -> None:
        self._pending.append(text)
        self._dirty.set()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"deltas-{self._turn.turn_id}")

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
            self._dirty.clear()
            frame = protocol.delta(self._turn.turn_id, self._turn.conversation_id, self._offset, text)
            self._offset += len(text)
            await self._hub.publish(self._turn.user_id, [Envelope.event(frame)])

    async def close(self) -> list[PendingEvent]:
        """Stop the ticker; the text not yet sent comes back, to go out with the turn's last events."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        async with self._lock:
            if not self._pending:
                return []
            text = "".join(self._pending)
            self._pending.clear()
            frame = protocol.delta(self._turn.turn_id, self._turn.conversation_id, self._offset, text)
            self._offset += len(text)
            return [PendingEvent(orjson.dumps(frame).decode())]

    async def _tick(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._interval)  # the coalescing window, not a wait for state
            await self.flush()


class TurnRegistry:
    """This process's running turns: start, cancel (locally or via the broker), drain on shutdown."""

    def __init__(
        self,
        *,
        db: Sessionmaker,
        reads: Sessionmaker,
        hub: Hub,
        locks: TurnLocks,
        agent: Agent,
        run_tool: ToolRunner,
        lock_ttl: float,
        turn_timeout: float,
        history_messages: int,
    ) -> None:
        self._db = db
        self._reads = reads
        self._hub = hub
        self._locks = locks
        self._agent = agent
        self._run_tool = run_tool
        self._lock_ttl = lock_ttl
        self._turn_timeout = turn_timeout
        self._history = history_messages
        self._turns: dict[str, Turn] = {}
        self._by_lock: dict[str, Turn] = {}
        hub.on_control(self._on_control)

    def __len__(self) -> int:
        return len(self._turns)

    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def running_in(self, lock_key: str) -> Turn | None:
        """The turn this process runs under `lock_key` (a conversation), if any."""
        return self._by_lock.get(lock_key)

    def start(self, turn: Turn) -> None:
        self._turns[turn.turn_id] = turn
        self._by_lock[turn.lock_key] = turn
        turn.task = asyncio.create_task(self._run(turn), name=f"turn-{turn.turn_id}")

    def cancel_local(self, user_id: int, turn_id: str) -> bool:
        """Cancel the turn if this process runs it (and it is `user_id`'s)."""
        turn = self._turns.get(turn_id)
        if turn is None or turn.user_id != user_id:
            return False
        turn.cancel_requested = True
        if turn.generation is not None and not turn.generation.done():
            turn.generation.cancel()
        return True

    async def cancel(self, user_id: int, turn_id: str) -> None:
        """Cancel wherever the turn runs: here, or on another worker through the broker."""
        if not self.cancel_local(user_id, turn_id):
            await self._hub.send_control(user_id, {"type": "cancel", "turn_id": turn_id})

    def _on_control(self, user_id: int, message: dict[str, Any]) -> None:
        if message.get("type") == "cancel" and isinstance(message.get("turn_id"), str):
            self.cancel_local(user_id, message["turn_id"])

    async def shutdown(self, grace: float) -> None:
        """Let running turns finish for `grace` seconds, then cancel the rest (their partial replies persist)."""
        running = [turn.task for turn in self._turns.values() if turn.task is not None]
        if not running:
            return
        logger.info("Waiting up to %.1fs for %d running turn(s)", grace, len(running))
        _, pending = await asyncio.wait(running, timeout=grace)
        for turn in list(self._turns.values()):
            if turn.generation is not None:
                turn.generation.cancel()
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=5)
            for task in stuck:
                task.cancel()

    # --- one turn ---------------------------------------------------------------------------

    async def _run(self, turn: Turn) -> None:
        deltas = DeltaStream(self._hub, turn)
        renewer = asyncio.create_task(self._renew_lock(turn))
        try:
            async with self._hub.interest(turn.user_id):  # hear `cancel` from other workers
                turn.generation = asyncio.create_task(self._generate(turn, deltas))
                if turn.cancel_requested:  # a cancel came before the generation existed
                    turn.generation.cancel()
                try:
                    async with asyncio.timeout(self._turn_timeout):
                        await turn.generation
                    turn.status = "done"
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # the registry itself is being torn down
                    turn.status = "cancelled"
                except TimeoutError:
                    turn.status, turn.reason = "failed", "The reply took too long"
                except ProviderError as exc:
                    turn.status, turn.reason = "failed", str(exc)
                except Exception:
                    logger.exception("Turn %s failed", turn.turn_id)
                    turn.status, turn.reason = "failed", "Internal error while generating the reply"
                await self._finish(turn, tail=await deltas.close())
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._release_lock(turn)
            self._turns.pop(turn.turn_id, None)
            turn.finished.set()

    async def _release_lock(self, turn: Turn) -> None:
        if turn.lock_held:
            turn.lock_held = False
            if self._by_lock.get(turn.lock_key) is turn:
                del self._by_lock[turn.lock_key]
            await self._locks.release(turn.lock_key, turn.lock_owner)

    async def _generate(self, turn: Turn, deltas: DeltaStream) -> None:
        async with self._reads() as session:
            history = await messages.recent(session, turn.conversation_id, limit=self._history)

        async def execute(call: ToolCallRequest) -> Any:
            await deltas.flush()  # text before the call reaches clients before the call does
            return await self._execute_tool(turn, call)

        async for text in self._agent.run(to_chat_messages(history), execute):
            turn.reply.append(text)
            deltas.push(text)

    async def _execute_tool(self, turn: Turn, call: ToolCallRequest) -> Any:
        async with transaction(self._db, self._hub.publish_pending) as outbox:
            await outbox.emit(
                turn.user_id, protocol.tool_call(turn.turn_id, turn.conversation_id, call.id, call.name, call.arguments)
            )
            result = await self._run_tool(outbox, turn.user_id, call)
            record = {"id": call.id, "name": call.name, "arguments": call.arguments, "result": result}
            outbox.session.add(
                Message(
                    conversation_id=turn.conversation_id,
                    user_id=turn.user_id,
                    role="tool",
                    content=_json_text(result),
                    turn_id=turn.turn_id,
                    tool_call=record,
                )
            )
            await outbox.emit(turn.user_id, protocol.tool_result(turn.turn_id, turn.conversation_id, call.id, result))
        turn.tool_calls.append({"name": call.name, "arguments": call.arguments, "result": result})
        return result

    async def _finish(self, turn: Turn, *, tail: list[PendingEvent]) -> None:
        """Persist the reply with its status, free the conversation, then tell every socket.

        A database blip (a PostgreSQL restart or failover) must not lose a finished reply: the
        write is retried, the conversation's lock still held and renewed, for FINISH_RETRY_FOR.
        """
        delay, deadline = 0.1, time.monotonic() + FINISH_RETRY_FOR
        while True:
            try:
                outbox = await self._persist_reply(turn)
                break
            except IntegrityError:
                # The conversation was deleted mid-turn: the reply has nowhere to go, but the
                # turn's end is still logged, so every socket (and every resume) sees it.
                logger.info("Conversation %s was deleted during turn %s", turn.conversation_id, turn.turn_id)
                turn.status, turn.reason = "failed", "The conversation no longer exists"
                outbox = await self._persist_end_only(turn)
                break
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() > deadline:
                    logger.exception("Could not persist the reply of turn %s", turn.turn_id)
                    turn.status, turn.reason = "failed", "The reply could not be saved"
                    end = protocol.turn_end(turn.turn_id, turn.conversation_id, "failed", None, reason=turn.reason)
                    await self._release_lock(turn)
                    await self._hub.publish_pending({turn.user_id: [*tail, PendingEvent(orjson.dumps(end).decode())]})
                    return
                logger.warning("Database unavailable saving turn %s; retrying in %.1fs", turn.turn_id, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        # Free before anyone hears the turn ended: a client that sends its next message on
        # `turn.end` must not find the conversation busy.
        await self._release_lock(turn)
        outbox.prepend(turn.user_id, tail)  # the last delta, the reply and turn.end: one publish
        await outbox.publish(self._hub.publish_pending)

    async def _persist_reply(self, turn: Turn) -> Outbox:
        async with transaction(self._db, None) as outbox:
            now = utcnow()
            seq = await outbox.reserve(turn.user_id, 2)
            reply = {
                "conversation_id": turn.conversation_id,
                "user_id": turn.user_id,
                "role": "assistant",
                "content": turn.text,
                "status": turn.status,
                "turn_id": turn.turn_id,
                "seq": seq,
                "created_at": now,
            }
            turn.message_id = reply["id"] = await messages.insert(outbox.session, reply)
            await conversations.touch(outbox.session, turn.user_id, turn.conversation_id, now=now)
            frame = protocol.message(turn.conversation_id, message_frame(reply))
            outbox.record(turn.user_id, {**frame, "seq": seq})
            end = protocol.turn_end(
                turn.turn_id, turn.conversation_id, turn.status, turn.message_id, reason=turn.reason
            )
            outbox.record(turn.user_id, {**end, "seq": seq + 1})
        return outbox

    async def _persist_end_only(self, turn: Turn) -> Outbox:
        async with transaction(self._db, None) as outbox:
            seq = await outbox.reserve(turn.user_id)
            end = protocol.turn_end(turn.turn_id, turn.conversation_id, turn.status, None, reason=turn.reason)
            outbox.record(turn.user_id, {**end, "seq": seq})
        return outbox

    async def _renew_lock(self, turn: Turn) -> None:
        while True:
            await asyncio.sleep(self._lock_ttl / 3)
            if not await self._locks.renew(turn.lock_key, turn.lock_owner, self._lock_ttl):
                logger.warning("Lost the lock of conversation %s during turn %s", turn.conversation_id, turn.turn_id)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()

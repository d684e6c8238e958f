"""Running turns: each is a task detached from any socket, owned by this process's `TurnRegistry`.

A turn streams the agent's reply as coalesced `delta` frames, persists every tool call, and
always ends by persisting the reply with its status (done, cancelled or failed) and a
`turn.end` event, in the statement that also frees the conversation. Cancelling a turn cancels
only its inner generation task, so the persistence that follows cannot be interrupted by it.
A turn this worker can no longer finish (the process dies) is ended as `interrupted` by another
worker, from the text its lease checkpoints (`server/chat/leases.py`). A reply the database
refuses to store ends the turn as `failed` instead, with its text if that can be stored and
without it otherwise, so the conversation is freed either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from server import metrics, protocol
from server.assistant.agent import Agent
from server.assistant.output import clean_text
from server.assistant.providers.base import ChatMessage, ProviderError, ToolCallRequest, TurnContext
from server.chat.deltas import DeltaStream
from server.chat.history import to_chat_messages
from server.chat.writer import TurnWriter
from server.clock import SYSTEM_CLOCK, Clock
from server.db.engine import Sessionmaker, is_refused, is_unavailable
from server.db.models import utcnow
from server.db.outbox import Outbox, PendingEvent, transaction
from server.db.turnstore.base import Finished, FinishItem, HistoryRow, ToolItem, TurnStore
from server.logs import throttled
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub

logger = logging.getLogger(__name__)

FINISH_RETRY_FOR = 30.0
"""How long a finished turn keeps retrying to save its reply while the database is unavailable."""
CHECKPOINT_AFTER = 1.0
"""A turn running longer than this has its partial reply saved with each heartbeat of its worker."""
SAVE_FAILED_REASON = "The reply could not be saved"

ToolRunner = Callable[[Outbox, int, ToolCallRequest], Awaitable[Any]]
"""Executes one tool for a user inside the given transaction (its changes and their events); returns the result."""


@dataclass(eq=False, slots=True)
class Turn:
    turn_id: str
    user_id: int
    conversation_id: int
    message: str
    """The user's message that started it."""
    history: list[HistoryRow]
    """The conversation before that message, oldest first."""
    timezone: str = "UTC"
    """The user's IANA zone (read when the message was accepted), for the assistant's dates."""
    started: float = field(default_factory=time.monotonic)
    reply: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: protocol.TurnStatus = "done"
    cancel_requested: bool = False
    reason: str | None = None
    message_id: int | None = None
    """The persisted reply, once it is."""
    checkpointed: int = 0
    """Length of the reply text at its last checkpoint."""
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    generation: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.reply)


class TurnEndedElsewhereError(Exception):
    """The turn is no longer registered (its conversation was deleted, or another worker ended it): it stops."""


@dataclass(slots=True)
class _Finish:
    turn: Turn
    item: FinishItem
    tail: list[PendingEvent]
    fallbacks: list[FinishItem] = field(default_factory=list)
    """What to write instead, in order, if the database refuses `item`: the turn as `failed`."""


class TurnRegistry:
    """This process's running turns: start, cancel (locally or via the broker), checkpoint, drain on shutdown."""

    def __init__(
        self,
        *,
        writer: TurnWriter,
        store: TurnStore,
        db: Sessionmaker,
        hub: Hub,
        agent: Agent,
        run_tool: ToolRunner,
        turn_timeout: float,
        clock: Clock = SYSTEM_CLOCK,
        on_done: Callable[[Turn], None] = lambda _turn: None,
    ) -> None:
        self._writer = writer
        self._store = store
        self._db = db
        self._hub = hub
        self._agent = agent
        self._run_tool = run_tool
        self._turn_timeout = turn_timeout
        self._clock = clock
        self._on_done = on_done
        self._turns: dict[str, Turn] = {}
        self._unfinished: dict[str, _Finish] = {}
        """Turns whose reply could not be saved in time: retried by `retry_unfinished`, or this
        worker's conversations would stay busy for as long as it lives."""
        hub.on_control(self._on_control)

    def __len__(self) -> int:
        return len(self._turns)

    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def start(self, turn: Turn) -> None:
        self._turns[turn.turn_id] = turn
        turn.task = asyncio.create_task(self._run(turn), name=f"turn-{turn.turn_id}")
        metrics.TURNS_STARTED.inc()

    def cancel_local(self, user_id: int, turn_id: str) -> bool:
        """Cancel the turn if this process runs it (and it is `user_id`'s)."""
        turn = self._turns.get(turn_id)
        if turn is None or turn.user_id != user_id:
            return False
        turn.cancel_requested = True
        if turn.generation is not None and not turn.generation.done():
            turn.generation.cancel()
        return True

    def cancel(self, user_id: int, turn_id: str) -> None:
        """Cancel wherever the turn runs: here, or on another worker through the broker."""
        if not self.cancel_local(user_id, turn_id):
            self._hub.send_control(user_id, {"type": "cancel", "turn_id": turn_id})

    def _on_control(self, user_id: int, message: dict[str, Any]) -> None:
        if message.get("type") == "cancel" and isinstance(message.get("turn_id"), str):
            self.cancel_local(user_id, message["turn_id"])

    def partials(self) -> dict[str, str]:
        """The replies worth checkpointing now: of turns running a while, with new text since the last time."""
        now = time.monotonic()
        saved: dict[str, str] = {}
        for turn in self._turns.values():
            if now - turn.started >= CHECKPOINT_AFTER and sum(map(len, turn.reply)) != turn.checkpointed:
                text = turn.text
                turn.checkpointed = len(text)
                saved[turn.turn_id] = text
        return saved

    async def retry_unfinished(self) -> None:
        """Try once more to save the replies that could not be saved (called with each lease renewal).

        A reply the database refuses is logged and skipped, so it cannot hold up the others."""
        for turn_id, entry in list(self._unfinished.items()):
            try:
                await self._save(entry)
            except Exception as exc:
                if is_unavailable(exc):
                    return  # the database is still away: the next renewal tries again
                throttled(logger, "database.turn-refused").failure("Saving turn %s failed again: %r", turn_id, exc)
                continue
            del self._unfinished[turn_id]

    async def shutdown(self, grace: float) -> None:
        """Let running turns finish for `grace` seconds, then cancel the rest (their partial replies persist)."""
        running = [turn.task for turn in self._turns.values() if turn.task is not None]
        if running:
            logger.info("Waiting up to %.1fs for %d running turn(s)", grace, len(running))
            _, pending = await asyncio.wait(running, timeout=grace)
            for turn in list(self._turns.values()):
                if turn.generation is not None:
                    turn.generation.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=5)
                for task in stuck:
                    task.cancel()
        await self._writer.drain()

    # --- one turn ---------------------------------------------------------------------------

    async def _run(self, turn: Turn) -> None:
        # Detached from the socket that started it (whose ids this task inherited): its own ids on its lines.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            turn_id=turn.turn_id, user_id=turn.user_id, conversation_id=turn.conversation_id
        )
        deltas = DeltaStream(
            lambda event: self._hub.publish(turn.user_id, [Envelope(event.text)]),
            turn_id=turn.turn_id,
            conversation_id=turn.conversation_id,
        )
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
                except TurnEndedElsewhereError:
                    turn.status = "cancelled"  # its end is already written: `_finish` writes nothing
                except TimeoutError:
                    turn.status, turn.reason = "failed", "The reply took too long"
                except ProviderError as exc:
                    turn.status, turn.reason = "failed", str(exc)
                except Exception:
                    logger.exception("Turn %s failed", turn.turn_id)
                    turn.status, turn.reason = "failed", "Internal error while generating the reply"
                await self._finish(turn, tail=deltas.close())
                lasted = time.monotonic() - turn.started
                metrics.TURNS_ENDED_BY_OUTCOME[turn.status].inc()
                metrics.TURN_SECONDS.observe(lasted)
                # The turn's access line: outcome and length, never text (nor the reason: it may quote the model).
                logger.info(
                    "Turn ended %s %.0fms",
                    turn.status,
                    lasted * 1000,
                    extra={"outcome": turn.status, "duration_ms": round(lasted * 1000, 1)},
                )
        finally:
            self._turns.pop(turn.turn_id, None)
            turn.finished.set()
            self._on_done(turn)

    async def _generate(self, turn: Turn, deltas: DeltaStream) -> None:
        messages = [*to_chat_messages(turn.history), ChatMessage(role="user", content=turn.message)]

        async def execute(call: ToolCallRequest) -> Any:
            deltas.flush()  # text before the call reaches clients before the call does
            return await self._execute_tool(turn, call)

        context = TurnContext(now=self._clock.now(), timezone=turn.timezone)
        async for text in self._agent.run(messages, execute, context):
            turn.reply.append(text)
            deltas.push(text)

    async def _execute_tool(self, turn: Turn, call: ToolCallRequest) -> Any:
        """`tool.call`, the tool's own transaction (its changes and their `task.*` events), then `tool.result`
        with the `tool` message: three commits, in that seq order, each published as soon as it commits."""
        called = await self._store.record_tool(
            ToolItem(
                user_id=turn.user_id,
                turn_id=turn.turn_id,
                kind="tool.call",
                created_at=utcnow(),
                frame=protocol.tool_call_text(turn.turn_id, turn.conversation_id, call.id, call.name, call.arguments),
            )
        )
        if called is None:
            raise TurnEndedElsewhereError(turn.turn_id)  # run nothing for a turn that is over
        self._hub.publish(turn.user_id, [Envelope(called.text, called.seq)])
        async with transaction(self._db, self._hub.publish_pending) as outbox:
            result = await self._run_tool(outbox, turn.user_id, call)
        result_json = orjson.dumps(result).decode()
        stored = await self._store.record_tool(
            ToolItem(
                user_id=turn.user_id,
                turn_id=turn.turn_id,
                kind="tool.result",
                created_at=utcnow(),
                frame=protocol.tool_result_text(turn.turn_id, turn.conversation_id, call.id, result_json),
                content=result_json,
                tool_call={"id": call.id, "name": call.name, "arguments": call.arguments, "result": result},
            )
        )
        if stored is None:
            raise TurnEndedElsewhereError(turn.turn_id)
        self._hub.publish(turn.user_id, [Envelope(stored.text, stored.seq)])
        turn.tool_calls.append({"name": call.name, "arguments": call.arguments, "result": result})
        return result

    async def _finish(self, turn: Turn, *, tail: list[PendingEvent]) -> None:
        """Persist the reply with its status and free the conversation (one statement), then tell every socket.

        A database blip (a PostgreSQL restart or failover) must not lose a finished reply: the
        write is retried for FINISH_RETRY_FOR; the turn keeps its lease meanwhile. A reply the
        database refuses ends the turn as `failed` (`_save`).
        """
        entry = _Finish(
            turn,
            _finish_item(turn, turn.text, turn.status, turn.reason),
            tail,
            fallbacks=[
                # The agent already replaced any NUL in the text; doing it again here costs nothing.
                _finish_item(turn, clean_text(turn.text), "failed", SAVE_FAILED_REASON),
                _finish_item(turn, "", "failed", SAVE_FAILED_REASON),
            ],
        )
        delay, deadline = 0.1, time.monotonic() + FINISH_RETRY_FOR
        while True:
            try:
                finished = await self._save(entry)
                break
            except Exception as exc:
                if not is_unavailable(exc) or time.monotonic() > deadline:
                    logger.exception("Could not persist the reply of turn %s; will retry with the lease", turn.turn_id)
                    self._unfinished[turn.turn_id] = entry
                    return
                metrics.DATABASE_ERRORS.labels(surface="turn").inc()
                throttled(logger, "database.turn").failure(
                    "Database unavailable saving turn %s; retrying in %.1fs", turn.turn_id, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        if not finished.ended:
            logger.info("Turn %s was ended elsewhere (its conversation deleted, or its lease lost)", turn.turn_id)

    async def _save(self, entry: _Finish) -> Finished:
        """Write the entry's item; if the database refuses it, its fallbacks in turn (the turn then ended `failed`)."""
        while True:
            try:
                return await self._submit_finish(entry)
            except Exception as exc:
                if not is_refused(exc) or not entry.fallbacks:
                    raise
                turn_id = entry.turn.turn_id
                logger.error("The database refused the reply of turn %s (%r); ending it as failed", turn_id, exc)
                entry.item = entry.fallbacks.pop(0)
                entry.turn.status, entry.turn.reason = "failed", SAVE_FAILED_REASON

    async def _submit_finish(self, entry: _Finish) -> Finished:
        result = await asyncio.shield(self._writer.finish(entry.item, lambda done: self._after_finish(entry, done)))
        assert isinstance(result, Finished)
        return result

    def _after_finish(self, entry: _Finish, result: Finished) -> Finished:
        """Right after the commit, in the writer's round: tell every socket."""
        if result.ended:
            entry.turn.message_id = result.message_id
            # The last delta, the reply and turn.end: one publish, after the commit.
            events = [*entry.tail, *result.events]
            self._hub.publish(entry.turn.user_id, [Envelope(e.text, e.seq) for e in events])
        return result


def _finish_item(turn: Turn, content: str, status: protocol.TurnStatus, reason: str | None) -> FinishItem:
    now = utcnow()
    return FinishItem(
        user_id=turn.user_id,
        conversation_id=turn.conversation_id,
        turn_id=turn.turn_id,
        content=content,
        status=status,
        created_at=now,
        message_frame=protocol.message_event_text(
            role="assistant", content=content, created_at=now, turn_id=turn.turn_id, status=status
        ),
        end_frame=protocol.turn_end_text(turn.turn_id, turn.conversation_id, status, reason=reason),
    )

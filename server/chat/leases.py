"""Worker leases: this worker renews its own, and ends as `interrupted` the turns of workers whose lease ran out.

Every worker keeps a row in `workers` and renews it every `heartbeat` seconds, then saves the
partial replies of its longer turns (a statement of its own: what they hold cannot cost the
lease). A turn's lease is its worker's: when a worker dies (SIGKILL, a lost machine), its row
stops being renewed, and after `lease` seconds any live worker
ends its turns the way the worker itself would have: the partial reply stored with status
`interrupted` and a `turn.end` delivered, in the statement that frees the conversation. Two
workers sweeping at once are harmless: the first to delete a turn's row ends it, the other finds
nothing. On the embedded default (one process) every turn left by a previous run is ended at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from datetime import datetime

import structlog

from server import metrics, protocol
from server.chat.turns import TurnRegistry
from server.chat.writer import TurnWriter
from server.db.engine import is_refused
from server.db.models import utcnow
from server.db.turnstore.base import Finished, FinishItem, OrphanTurn, TurnStore
from server.logs import Throttled
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub

logger = logging.getLogger(__name__)

INTERRUPTED_REASON = "The worker running this turn stopped"
SWEEP_BATCH = 200


def new_worker_id() -> str:
    """Unique per process start, readable in the `workers` table: host, pid, a random tag."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


class Leases:
    def __init__(
        self,
        *,
        store: TurnStore,
        writer: TurnWriter,
        turns: TurnRegistry,
        hub: Hub,
        worker_id: str,
        heartbeat: float,
        lease: float,
        single_process: bool,
    ) -> None:
        self._store = store
        self._writer = writer
        self._turns = turns
        self._hub = hub
        self.worker_id = worker_id
        self._heartbeat = heartbeat
        self._lease = lease
        self._single_process = single_process
        self._task: asyncio.Task[None] | None = None
        self._lost = False
        self._renewing_since: float | None = None
        """Since when (monotonic) this worker has renewed its lease without a failure."""
        self._failing = Throttled(logger)
        self._checkpoints_failing = Throttled(logger)
        self.interrupted = 0

    async def start(self) -> None:
        await self._store.register_worker(self.worker_id)
        if self._single_process:
            # Nobody else runs: whatever a previous run left running is over.
            await self.sweep(lease=-1)
        self._task = asyncio.create_task(self._loop(), name="worker-lease")

    async def stop(self) -> None:
        """Stop renewing and give the lease up (after the turns drained: nothing of ours is running)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # a dead database: the lease expires by itself
            await self._store.unregister_worker(self.worker_id)

    async def _loop(self) -> None:
        structlog.contextvars.bind_contextvars(worker_id=self.worker_id)
        while True:
            await asyncio.sleep(self._heartbeat)  # the renewal period, not a wait for state
            try:
                await self.renew()
                if self._renewing_since is None:
                    self._renewing_since = time.monotonic()
                # Only once this worker has renewed for a whole lease: after a database outage every
                # lease looks expired, and live workers need that long to renew theirs too.
                if time.monotonic() - self._renewing_since >= self._lease:
                    await self.sweep()
                await self._turns.retry_unfinished()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop boundary: a database blip must not end the lease for good
                self._renewing_since = None
                metrics.DATABASE_ERRORS.labels(surface="lease").inc()
                self._failing.failure("Lease renewal or sweep failed: %r", exc)
            else:
                self._failing.recovered("Lease renewal and sweep work again")

    def _publish_ended(self, result: Finished) -> Finished:
        if result.ended and result.events:
            self._hub.publish(result.user_id, [Envelope(e.text, e.seq) for e in result.events])
        return result

    async def renew(self) -> None:
        """Renew the lease, then checkpoint the partial replies: renewing comes first and alone, so
        that whatever a checkpoint holds cannot cost this worker its lease (and its turns)."""
        if await self._store.heartbeat(self.worker_id):
            if self._lost:
                logger.info("Worker lease renewed again")
                self._lost = False
            await self._checkpoint()
            return
        # Our row is gone: another worker took us for dead and ended our turns. Come back.
        if not self._lost:
            logger.warning("Worker %s lost its lease; its running turns were ended as interrupted", self.worker_id)
            self._lost = True
        await self._store.register_worker(self.worker_id)

    async def _checkpoint(self) -> None:
        try:
            await self._store.checkpoint(self.worker_id, self._turns.partials())
        except Exception as exc:
            if not is_refused(exc):
                raise  # the database went away: the loop's boundary counts and logs it
            # These texts are saved again with the turn's next text, or lost to a crash: the lease matters more.
            self._checkpoints_failing.failure("Saving the partial replies failed: %r", exc)
        else:
            self._checkpoints_failing.recovered("Partial replies are saved again")

    async def sweep(self, *, lease: float | None = None) -> int:
        """End the turns of workers whose lease ran out; returns how many were ended here."""
        orphans = await self._store.orphans(
            self.worker_id, lease_seconds=self._lease if lease is None else lease, limit=SWEEP_BATCH
        )
        # Through this worker's writer: its rounds already keep one write per user per statement.
        results = await asyncio.gather(
            *(self._writer.finish(_interrupted(orphan), self._publish_ended) for orphan in orphans),
            return_exceptions=True,
        )
        for orphan, result in zip(orphans, results, strict=True):
            if isinstance(result, BaseException):
                if not is_refused(result):
                    raise result  # the database went away: the loop's boundary counts it, the next sweep retries
                # One turn the database will not end must not keep the others from being ended.
                logger.warning("Could not end turn %s of worker %s: %r", orphan.turn_id, orphan.worker_id, result)
        ended = 0
        by_worker: dict[str, tuple[datetime | None, list[str]]] = {}
        for orphan, result in zip(orphans, results, strict=True):
            if isinstance(result, Finished) and result.ended:
                ended += 1
                by_worker.setdefault(orphan.worker_id, (orphan.last_heard, []))[1].append(orphan.turn_id)
        if ended:
            self.interrupted += ended
            metrics.TURNS_ENDED_BY_OUTCOME["interrupted"].inc(ended)
            for worker_id, (last_heard, turn_ids) in by_worker.items():
                _log_recovery(worker_id, last_heard, turn_ids)
        await self._store.forget_dead_workers(lease_seconds=max(self._lease, 0) * 4)
        return ended


def _log_recovery(worker_id: str, last_heard: datetime | None, turn_ids: list[str]) -> None:
    """One line per stopped worker: which, when it was last heard from, and what of its work was ended."""
    if last_heard is None:
        heard, ago = "never (its lease row is gone)", None
    else:
        ago = round((utcnow() - last_heard).total_seconds(), 1)
        heard = f"{last_heard.isoformat(timespec='milliseconds')} ({ago}s ago)"
    logger.warning(
        "Worker %s stopped (last heard from %s): ended %d of its turn(s) as interrupted",
        worker_id,
        heard,
        len(turn_ids),
        extra={
            "dead_worker": worker_id,
            "last_heard_seconds_ago": ago,
            "turns_interrupted": len(turn_ids),
            "turn_ids": turn_ids[:50],
        },
    )


def _interrupted(orphan: OrphanTurn) -> FinishItem:
    now = utcnow()
    return FinishItem(
        user_id=orphan.user_id,
        conversation_id=orphan.conversation_id,
        turn_id=orphan.turn_id,
        content=orphan.partial_reply,
        status="interrupted",
        created_at=now,
        message_frame=protocol.message_event_text(
            role="assistant", content=orphan.partial_reply, created_at=now, turn_id=orphan.turn_id, status="interrupted"
        ),
        end_frame=protocol.turn_end_text(
            orphan.turn_id, orphan.conversation_id, "interrupted", reason=INTERRUPTED_REASON
        ),
    )

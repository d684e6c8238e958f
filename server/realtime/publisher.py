"""The hub's way out to other workers: one background task sends what was published, batched, to the broker.

Nobody waits on the broker: `put` only queues. Each round sends everything queued since the
last one in one `publish_many` call (one Redis round trip), one message per channel. When the
broker fails or does not answer in time, the round is dropped and its channels remembered; once
a publish gets through again, every worker is told to `catch_up` those users' sockets from the
event log. Nothing persisted is lost that way, and a paused Redis stalls no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from server import metrics
from server.logs import Throttled
from server.realtime.broker.base import Broker, BrokerError
from server.realtime.envelope import Envelope, encode_batch

logger = logging.getLogger(__name__)

MAX_PENDING = 20_000
"""Envelopes queued at most; beyond, the oldest rounds are dropped (and caught up later)."""
RETRY_AFTER_FAILURE = 0.25
"""Pause after a failed round, so a dead broker costs one attempt per this long, not a busy loop."""
STOP_FLUSH = 2.0
CATCH_UP = Envelope.command({"type": "catch_up"})


class Publisher:
    def __init__(self, broker: Broker, *, origin: str) -> None:
        self._broker = broker
        self._origin = origin
        self._pending: dict[str, list[Envelope]] = {}
        self._count = 0
        self._missed: set[str] = set()
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._oldest: float | None = None
        """Unix time of the first `put` since the last round: the batches' `published` stamp."""
        self._outage = Throttled(logger)
        self.rounds = 0
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="broker-publisher")

    async def stop(self) -> None:
        """Send what is still queued (for at most STOP_FLUSH seconds), then stop."""
        if self._task is None:
            return
        if self._pending:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_FLUSH):
                    await self._drained.wait()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def put(self, channel: str, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        self._pending.setdefault(channel, []).extend(envelopes)
        self._count += len(envelopes)
        if self._oldest is None:
            self._oldest = time.time()  # wall clock: the receiving worker, maybe on another machine, compares
        if self._count > MAX_PENDING:  # the broker is far behind: those users catch up from the log
            self._missed.update(self._pending)
            self._pending.clear()
            self._count = 0
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if not self._pending and not self._missed:
                continue
            pending, self._pending, self._count = self._pending, {}, 0
            published, self._oldest = self._oldest, None
            missed, self._missed = self._missed, set()
            for channel in missed:
                # After this round's events: the socket then replays from the log what it lacks.
                pending.setdefault(channel, []).append(CATCH_UP)
            messages = [
                (channel, encode_batch(self._origin, envelopes, published=published))
                for channel, envelopes in pending.items()
            ]
            try:
                await self._broker.publish_many(messages)
            except BrokerError as exc:
                self.failures += 1
                metrics.BROKER_PUBLISH_ERRORS.inc()
                self._missed |= pending.keys()
                self._outage.failure("Broker publishing failed (%s); sockets on other workers will catch up", exc)
                await asyncio.sleep(RETRY_AFTER_FAILURE)
                self._wakeup.set()  # try again (with the catch-ups) even if nothing new is published
                continue
            self.rounds += 1
            if not self._pending:
                self._drained.set()
            self._outage.recovered("Broker publishing works again")

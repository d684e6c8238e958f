"""The reminder scheduler: every worker runs one; together they fire each due reminder exactly once.

The state is the database's (`tasks.remind_at`; see server/db/reminders.py for the claim), so the
scheduler holds none: a restarted or added worker simply joins in. It sleeps until the earliest
pending reminder, at most `poll` seconds (a reminder set on another worker, or by hand, is seen
within that), and wakes early when `wake()` is called. When due reminders cannot be claimed (other
workers hold those users), it retries after `RETRY` seconds instead of spinning.

Fired reminders are published after their transaction commits, like every other event: live to
every socket of the user on every worker, and from the event log to a socket that resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.clock import Clock
from server.db import reminders
from server.db.engine import Sessionmaker
from server.db.outbox import Publisher, transaction

logger = logging.getLogger(__name__)

RETRY = 0.05
"""Seconds before trying again when reminders are due but held by another transaction."""


class ReminderScheduler:
    def __init__(
        self,
        *,
        db: Sessionmaker,
        reads: Sessionmaker,
        publish: Publisher,
        clock: Clock,
        poll: float,
        batch_users: int,
        batch_reminders: int,
    ) -> None:
        self._db = db
        self._reads = reads
        self._publish = publish
        self._clock = clock
        self._poll = poll
        self._batch_users = batch_users
        self._batch_reminders = batch_reminders
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fired = 0
        """Reminders this worker fired since it started."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="reminder-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        """Look for due reminders now (a reminder was set sooner than the scheduler's next look, or the clock moved)."""
        self._wakeup.set()

    async def run_once(self) -> int:
        """Fire every reminder due now that this worker can claim; returns how many it fired."""
        fired = 0
        while True:
            async with transaction(self._db, self._publish) as outbox:
                claim = await reminders.claim(
                    outbox, now=self._clock.now(), max_users=self._batch_users, max_reminders=self._batch_reminders
                )
            fired += claim.fired
            if not claim.full:
                self.fired += fired
                return fired

    async def until_due(self) -> float | None:
        """Seconds until the earliest pending reminder (zero or less: due now); None: there is none.

        A plain read: a worker with nothing due never opens a write transaction (on SQLite every
        write transaction takes the database's one write lock, so idle polling would queue writers).
        """
        async with self._reads() as session:
            due = await reminders.next_due(session)
        return None if due is None else (due - self._clock.now()).total_seconds()

    async def step(self) -> float:
        """One look: fire what is due, and say how long to sleep before the next look.

        After a round that fired some, a reminder still due fell due meanwhile: look again at once.
        After a round that fired none, another worker's transaction holds it: look again shortly.
        """
        wait = await self.until_due()
        if wait is None:
            return self._poll
        if wait > 0:
            return min(wait, self._poll)
        fired = await self.run_once()
        wait = await self.until_due()
        if wait is None:
            return self._poll
        if wait <= 0:
            return 0.0 if fired else RETRY
        return min(wait, self._poll)

    async def _loop(self) -> None:
        while True:
            try:
                delay = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop boundary: a database blip must not stop reminders for good
                logger.warning("Reminder scheduling failed; retrying: %r", exc)
                delay = self._poll
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # the time to the next reminder, not a wait for state
                        await self._wakeup.wait()
            self._wakeup.clear()

"""Snoozing and dismissing a reminder from a socket (`reminder.snooze`, `reminder.dismiss`).

The same change as `PATCH /api/{user_id}/tasks/{id}` with `snooze_minutes` or `dismiss_reminder`,
counted against the same per-user budget (RATE_LIMIT_TOOL_CALLS). Every socket of the user
learns of it through the events it emits (`task.updated`, `reminder.dismissed`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from server.abuse import Limits
from server.clock import Clock
from server.db import tasks
from server.db.outbox import Outbox


class ReminderActions:
    def __init__(
        self,
        *,
        transaction: Callable[[], AbstractAsyncContextManager[Outbox]],
        limits: Limits,
        clock: Clock,
    ) -> None:
        self._transaction = transaction
        self._limits = limits
        self._clock = clock

    async def snooze(self, user_id: int, task_id: int, minutes: int) -> None:
        """Remind again `minutes` from now; `NotFoundError`, `InvalidInputError` (a completed task)."""
        await self._limits.tool_call(user_id)
        async with self._transaction() as outbox:
            await tasks.update(outbox, user_id, task_id, {"snooze_minutes": minutes}, now=self._clock.now())

    async def dismiss(self, user_id: int, task_id: int) -> None:
        await self._limits.tool_call(user_id)
        async with self._transaction() as outbox:
            await tasks.update(outbox, user_id, task_id, {"dismiss_reminder": True}, now=self._clock.now())

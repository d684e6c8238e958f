"""A clock the test sets: due times, reminders and repeating tasks see exactly the time it says."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        assert moment.tzinfo is not None, "an aware datetime"
        self._now = moment.astimezone(UTC)
        self._changed()

    def advance(self, **delta: float) -> datetime:
        """Move on by `timedelta(**delta)`; whoever listens (the reminder scheduler) looks at once."""
        self._now += timedelta(**delta)
        self._changed()
        return self._now

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

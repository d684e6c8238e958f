"""When tasks are due, in the user's time zone: the reminder line and the `/due` list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DUE_WINDOW = timedelta(hours=24)
"""`/due` lists what falls due within this (and everything overdue)."""


def zone_named(name: object) -> ZoneInfo:
    """The account's zone (`GET /api/auth/me`), or UTC if this machine's tz data does not know it."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def parse_instant(value: object) -> datetime | None:
    """An API timestamp (ISO 8601, UTC with or without its offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """`Tue 3 Dec, 17:00` in `zone` (English names whatever the locale: the CLI speaks English)."""
    local = moment.astimezone(zone)
    weekday = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[local.weekday()]
    month = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")[local.month - 1]
    return f"{weekday} {local.day} {month}, {local:%H:%M}"


def reminder_line(frame: dict[str, Any], zone: ZoneInfo, *, alarm: str) -> str:
    """`⏰ Reminder: Call the dentist (due Tue 3 Dec, 17:00)` for a `reminder` frame."""
    task = frame.get("task")
    if not isinstance(task, dict):
        task = {}
    due = parse_instant(task.get("due_at"))
    when = f" (due {local_time(due, zone)})" if due else ""
    return f"{alarm} Reminder: {task.get('title')}{when}"


def due_line(task: dict[str, Any], zone: ZoneInfo, now: datetime) -> str:
    """`7. Pay the rent: overdue since Mon 1 Dec, 09:00` or `5. Call the dentist: due Tue 3 Dec, 17:00`."""
    due = parse_instant(task.get("due_at"))
    when = "no due time" if due is None else local_time(due, zone)
    state = "overdue since" if due is not None and due < now else "due"
    return f"{task.get('id')}. {task.get('title')}: {state} {when}"

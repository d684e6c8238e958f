"""The CLI's due times in the account's zone (client_demo/due.py): the reminder line and `/due`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from client_demo.due import due_line, local_time, parse_instant, reminder_line, zone_named

BERLIN = ZoneInfo("Europe/Berlin")


def test_instants_are_written_in_the_zone_with_english_names() -> None:
    assert local_time(datetime(2026, 12, 3, 16, 0, tzinfo=UTC), BERLIN) == "Thu 3 Dec, 17:00"
    assert local_time(datetime(2026, 12, 3, 23, 30, tzinfo=UTC), ZoneInfo("Asia/Tokyo")) == "Fri 4 Dec, 08:30"


def test_api_timestamps_with_or_without_offset() -> None:
    assert parse_instant("2026-12-03T16:00:00Z") == datetime(2026, 12, 3, 16, tzinfo=UTC)
    assert parse_instant("2026-12-03T16:00:00") == datetime(2026, 12, 3, 16, tzinfo=UTC)
    assert parse_instant("2026-12-03T17:00:00+01:00") == datetime(2026, 12, 3, 16, tzinfo=UTC)
    assert parse_instant("soon") is None
    assert parse_instant(None) is None


def test_the_reminder_line() -> None:
    frame = {"type": "reminder", "task": {"title": "Call the dentist", "due_at": "2026-12-01T16:00:00Z"}}
    assert reminder_line(frame, BERLIN, alarm="⏰") == "⏰ Reminder: Call the dentist (due Tue 1 Dec, 17:00)"
    frame = {"type": "reminder", "task": {"title": "Stretch", "due_at": None}}
    assert reminder_line(frame, BERLIN, alarm="(!)") == "(!) Reminder: Stretch"


def test_due_lines_say_overdue_or_due() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    late = {"id": 7, "title": "Pay the rent", "due_at": "2026-12-01T08:00:00Z"}
    soon = {"id": 5, "title": "Call the dentist", "due_at": "2026-12-02T16:00:00Z"}
    assert due_line(late, BERLIN, now) == "7. Pay the rent: overdue since Tue 1 Dec, 09:00"
    assert due_line(soon, BERLIN, now) == "5. Call the dentist: due Wed 2 Dec, 17:00"


def test_an_unknown_zone_falls_back_to_utc() -> None:
    assert zone_named("Mars/Olympus_Mons") == ZoneInfo("UTC")
    assert zone_named("Europe/Berlin") == BERLIN

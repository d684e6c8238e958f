"""The RRULE subset: what is accepted and how it is normalised, what is refused and why, and the next
occurrence in the user's zone (across daylight-saving changes, month ends, missed occurrences)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from server.recurrence import RuleError, next_occurrence, normalise

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "normalised"),
    [
        ("FREQ=DAILY", "FREQ=DAILY"),
        ("freq=weekly;byday=we,mo", "FREQ=WEEKLY;BYDAY=MO,WE"),
        ("RRULE:FREQ=WEEKLY;BYDAY=SU,MO,MO;INTERVAL=2", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,SU"),
        (" FREQ=MONTHLY ; BYMONTHDAY=-1 ", "FREQ=MONTHLY;BYMONTHDAY=-1"),
        ("FREQ=YEARLY;INTERVAL=1", "FREQ=YEARLY"),
    ],
)
def test_rules_are_normalised(rule: str, normalised: str) -> None:
    assert normalise(rule) == normalised
    assert normalise(normalised) == normalised


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ("", "empty"),
        ("FREQ=HOURLY", "FREQ must be one of"),
        ("FREQ=DAILY;COUNT=3", "unsupported part 'COUNT'"),
        ("FREQ=DAILY;UNTIL=20270101T000000Z", "unsupported part 'UNTIL'"),
        ("FREQ=DAILY;BYDAY=MO", "BYDAY is supported only with FREQ=WEEKLY"),
        ("FREQ=WEEKLY;BYDAY=1MO", "no ordinals"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY takes weekdays"),
        ("FREQ=WEEKLY;BYMONTHDAY=3", "BYMONTHDAY is supported only with FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "BYMONTHDAY must be one day"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "BYMONTHDAY must be one day"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be"),
        ("FREQ=DAILY;INTERVAL=1000", "INTERVAL must be"),
        ("FREQ=DAILY;INTERVAL=²", "INTERVAL must be"),
        ("INTERVAL=2", "FREQ is required"),
        ("FREQ=DAILY;FREQ=WEEKLY", "given twice"),
        ("FREQ", "expected NAME=VALUE"),
        ("FREQ=DAILY;" + "X" * 100, "longer than"),
    ],
)
def test_rules_outside_the_subset_are_refused_by_name(rule: str, says: str) -> None:
    with pytest.raises(RuleError, match=says):
        normalise(rule)


def test_a_weekly_task_keeps_its_local_time_across_the_change_to_summer_time() -> None:
    due = utc(2027, 3, 22, 8, 0)  # Monday 09:00 in Berlin (CET, UTC+1)
    following = next_occurrence("FREQ=WEEKLY", due_at=due, after=due, zone=BERLIN)
    assert following == utc(2027, 3, 29, 7, 0)  # Monday 09:00 in Berlin (CEST, UTC+2): an hour earlier in UTC
    assert following is not None and following.astimezone(BERLIN).hour == 9


def test_a_daily_task_keeps_its_local_time_across_the_change_back_to_winter_time() -> None:
    due = utc(2027, 11, 6, 12, 30)  # Saturday 08:30 in New York (EDT, UTC-4); the clocks go back on Sunday
    following = next_occurrence("FREQ=DAILY", due_at=due, after=due, zone=NEW_YORK)
    assert following == utc(2027, 11, 7, 13, 30)  # Sunday 08:30 EST (UTC-5)


def test_weekdays_interval_and_month_ends() -> None:
    monday = utc(2027, 1, 4, 9, 0)
    assert next_occurrence("FREQ=WEEKLY;BYDAY=MO,TH", due_at=monday, after=monday, zone=UTC) == utc(2027, 1, 7, 9, 0)
    assert next_occurrence("FREQ=WEEKLY;INTERVAL=2", due_at=monday, after=monday, zone=UTC) == utc(2027, 1, 18, 9, 0)
    end_of_january = utc(2027, 1, 31, 18, 0)
    last_day = next_occurrence("FREQ=MONTHLY;BYMONTHDAY=-1", due_at=end_of_january, after=end_of_january, zone=UTC)
    assert last_day == utc(2027, 2, 28, 18, 0)
    # The 31st of every month: months without one are skipped (RFC 5545), use -1 for "the last day".
    on_the_31st = next_occurrence("FREQ=MONTHLY", due_at=end_of_january, after=end_of_january, zone=UTC)
    assert on_the_31st == utc(2027, 3, 31, 18, 0)
    leap = utc(2028, 2, 29, 10, 0)
    assert next_occurrence("FREQ=YEARLY", due_at=leap, after=leap, zone=UTC) == utc(2032, 2, 29, 10, 0)


def test_completing_late_skips_the_missed_occurrences() -> None:
    due = utc(2027, 1, 4, 9, 0)
    late = utc(2027, 1, 20, 12, 0)  # more than two weeks later
    assert next_occurrence("FREQ=DAILY", due_at=due, after=late, zone=UTC) == utc(2027, 1, 21, 9, 0)
    early = utc(2027, 1, 1, 0, 0)  # completed before it was due: the next one after the due time
    assert next_occurrence("FREQ=DAILY", due_at=due, after=early, zone=UTC) == utc(2027, 1, 5, 9, 0)


def test_a_rule_that_never_comes_round_again_has_no_next_occurrence() -> None:
    february = utc(2027, 2, 3, 9, 0)
    assert next_occurrence("FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", due_at=february, after=february, zone=UTC) is None

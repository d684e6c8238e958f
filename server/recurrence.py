"""Repeating tasks: the RFC 5545 RRULE subset we accept, normalised, and the next occurrence in the user's zone.

Supported (RFC 5545 section 3.3.10): `FREQ=DAILY|WEEKLY|MONTHLY|YEARLY`, `INTERVAL=n`, `BYDAY=MO,TU,...`
(weekly rules only, plain weekdays) and `BYMONTHDAY=n` (monthly rules only, 1..31 or -31..-1 counting
from the month's end). Anything else (COUNT, UNTIL, BYHOUR, ordinal weekdays like `1MO`, ...) is
refused by name rather than half-understood. Occurrences come from python-dateutil's `rrule`.

A rule is anchored on the task's due time, read as wall-clock time in the user's zone: a task due
Monday 09:00 in Europe/Berlin that repeats weekly is due at 09:00 Berlin time every Monday, on
either side of a daylight-saving change (so its UTC instant moves by an hour).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

from dateutil import rrule

RULE_MAX = 100
"""Longest rule text accepted (the column's width)."""
INTERVAL_MAX = 999

_FREQUENCIES: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "DAILY": rrule.DAILY,
    "WEEKLY": rrule.WEEKLY,
    "MONTHLY": rrule.MONTHLY,
    "YEARLY": rrule.YEARLY,
}
_WEEKDAYS = {
    "MO": rrule.MO,
    "TU": rrule.TU,
    "WE": rrule.WE,
    "TH": rrule.TH,
    "FR": rrule.FR,
    "SA": rrule.SA,
    "SU": rrule.SU,
}
_PARTS = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY")


class RuleError(ValueError):
    """A rule that is malformed or outside the supported subset; the message says which part."""


@dataclass(frozen=True, slots=True)
class Rule:
    freq: str
    interval: int = 1
    byday: tuple[str, ...] = ()
    """Weekdays in calendar order, Monday first."""
    bymonthday: int | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse `FREQ=...;...` (an `RRULE:` prefix, any case and surrounding spaces allowed)."""
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[len("RRULE:") :]
        if not body:
            raise RuleError("the rule is empty; expected e.g. FREQ=WEEKLY;BYDAY=MO")
        if len(body) > RULE_MAX:
            raise RuleError(f"the rule is longer than {RULE_MAX} characters")
        parts: dict[str, str] = {}
        for part in body.split(";"):
            name, sep, value = part.strip().partition("=")
            name, value = name.strip().upper(), value.strip().upper()
            if not sep or not name or not value:
                raise RuleError(f"malformed part {part.strip()!r:.40}: expected NAME=VALUE")
            if name not in _PARTS:
                raise RuleError(f"unsupported part {name!r:.20}; supported: {', '.join(_PARTS)}")
            if name in parts:
                raise RuleError(f"{name} is given twice")
            parts[name] = value
        return cls._from_parts(parts)

    @classmethod
    def _from_parts(cls, parts: dict[str, str]) -> Rule:
        freq = parts.get("FREQ")
        if freq is None:
            raise RuleError("FREQ is required (DAILY, WEEKLY, MONTHLY or YEARLY)")
        if freq not in _FREQUENCIES:
            raise RuleError(f"FREQ must be one of {', '.join(_FREQUENCIES)}, not {freq!r:.20}")
        interval = 1
        if "INTERVAL" in parts:
            raw = parts["INTERVAL"]
            if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= INTERVAL_MAX:
                raise RuleError(f"INTERVAL must be a whole number from 1 to {INTERVAL_MAX}")
            interval = int(raw)
        byday: tuple[str, ...] = ()
        if "BYDAY" in parts:
            if freq != "WEEKLY":
                raise RuleError("BYDAY is supported only with FREQ=WEEKLY")
            days = {day.strip() for day in parts["BYDAY"].split(",")}
            unknown = sorted(day for day in days if day not in _WEEKDAYS)
            if unknown:
                raise RuleError(
                    f"BYDAY takes weekdays MO, TU, WE, TH, FR, SA, SU (no ordinals like 1MO), not {unknown[0]!r:.12}"
                )
            byday = tuple(day for day in _WEEKDAYS if day in days)
        bymonthday = None
        if "BYMONTHDAY" in parts:
            if freq != "MONTHLY":
                raise RuleError("BYMONTHDAY is supported only with FREQ=MONTHLY")
            raw = parts["BYMONTHDAY"]
            digits = raw[1:] if raw.startswith("-") else raw
            if not digits.isascii() or not digits.isdigit() or not 1 <= int(digits) <= 31:
                raise RuleError("BYMONTHDAY must be one day, 1 to 31 (or -1 to -31 from the month's end)")
            bymonthday = int(raw)
        return cls(freq=freq, interval=interval, byday=byday, bymonthday=bymonthday)

    def text(self) -> str:
        """The normalised form: upper case, parts in a fixed order, INTERVAL=1 left out."""
        parts = [f"FREQ={self.freq}"]
        if self.interval != 1:
            parts.append(f"INTERVAL={self.interval}")
        if self.byday:
            parts.append(f"BYDAY={','.join(self.byday)}")
        if self.bymonthday is not None:
            parts.append(f"BYMONTHDAY={self.bymonthday}")
        return ";".join(parts)

    def next_after(self, anchor: datetime, after: datetime, zone: tzinfo) -> datetime | None:
        """The first occurrence strictly after `after`, of the rule anchored on `anchor` in `zone` (UTC out).

        None if the rule has no later occurrence before year 9999 (e.g. the 31st of every February).
        """
        start = anchor.astimezone(zone).replace(tzinfo=None)
        rule = rrule.rrule(
            _FREQUENCIES[self.freq],
            dtstart=start,
            interval=self.interval,
            byweekday=[_WEEKDAYS[day] for day in self.byday] or None,
            bymonthday=self.bymonthday,
            cache=False,
        )
        # Compared as wall-clock times: occurrences are local times, whatever the offset of the day.
        found = rule.after(after.astimezone(zone).replace(tzinfo=None), inc=False)
        if found is None:
            return None
        return found.replace(tzinfo=zone).astimezone(UTC)


def normalise(text: str) -> str:
    """The rule's normalised text; `RuleError` if it is not one we support."""
    return Rule.parse(text).text()


def next_occurrence(rule: str, *, due_at: datetime, after: datetime, zone: tzinfo) -> datetime | None:
    """When the task repeating by `rule` is next due: its first occurrence after both `due_at` and `after`.

    Completing a repeating task late does not create an occurrence that is already overdue: the
    missed ones are skipped.
    """
    return Rule.parse(rule).next_after(due_at, max(due_at, after), zone)

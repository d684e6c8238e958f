"""Times in everyday English: finding the phrase ("tomorrow at 5pm"), and resolving it in the user's zone.

Parsing a message needs no clock: a phrase is kept as its words (`When`), and `resolve` turns it
into an instant once the turn's time and zone are known. `dateparser` reads the dates (weekdays,
"24 December", "in 2 hours", "next week"), with `PREFER_DATES_FROM=future` and the user's local
time as its base; the glue here covers what it reads differently from people ("on the 3rd",
"end of the month", "at 5"), and the rules for a bare hour:

- a day without a time is due at 17:00, or reminds at 09:00 (`DUE_TIME`, `REMIND_TIME`);
- "at 5" without am/pm: 1 to 6 is the afternoon, 8 to 11 the morning, 12 noon; after "morning"
  it is the morning, after "tonight", "afternoon" or "evening" the afternoon or evening; today, an
  hour already past in the morning means the evening; "at 7" (both plausible) is asked about;
- a weekday is the next one after today; said on that weekday ("on Friday" on a Friday) it is
  asked about, unless "this" (today) or "next" (in a week) says which;
- the wall-clock time is built in the user's zone, so "tomorrow at 9" is 09:00 there on either
  side of a daylight-saving change.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dateparser
from dateutil import rrule

from server.assistant.providers.base import TurnContext

_I = re.IGNORECASE

DUE_TIME = time(17, 0)
"""A due date said without a time: the end of the working day."""
REMIND_TIME = time(9, 0)
"""A reminder said without a time: the start of the day."""
PARTS_OF_DAY = {"morning": time(9), "afternoon": time(15), "evening": time(19), "night": time(20), "tonight": time(20)}
_PM_PARTS = frozenset({"afternoon", "evening", "night", "tonight"})
AMBIGUOUS_HOUR = 7
"""7 am and 7 pm are both plausible for a task: the one bare hour that is asked about."""

# The pieces of a time phrase, as regex source (details.py and grammar.py build on them too).
WEEKDAY = (
    r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?)"
)
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_ORD = r"(?:[12]?\d|3[01])(?:st|nd|rd|th)"
COUNT = r"(?:a|an|one|two|three|four|five|six|ten|fifteen|twenty|thirty|forty-five|\d{1,3})"
_UNIT = r"(?:minutes?|mins?|hours?|hrs?|days?|weeks?|months?)"
PART = r"(?:morning|afternoon|evening|night)"

_DAY = (
    rf"(?:today|tonight|tomorrow(?:\s+{PART})?|this\s+{PART}|(?:this\s+|next\s+)?{WEEKDAY}(?:\s+{PART})?"
    rf"|next\s+(?:week|month)|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month"
    rf"|the\s+{_ORD}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}"
    rf"|\d{{4}}-\d{{2}}-\d{{2}})"
)
TIME = (
    r"(?:(?:at\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)|(?:at\s+)?\d{1,2}:\d{2}|at\s+\d{1,2}"
    rf"|(?:at\s+)?(?:noon|midnight)|in\s+the\s+{PART})"
)
_RELATIVE = rf"in\s+{COUNT}\s+{_UNIT}"
PHRASE = (
    rf"(?:{_RELATIVE}(?:\s+(?:at\s+)?{TIME})?|{_DAY}(?:\s*,?\s*(?:at\s+)?{TIME})?"
    rf"|{TIME}(?:\s*,?\s*(?:on\s+)?{_DAY})?)"
)
"""A time phrase, as the grammar finds it at the end (or start) of a command."""

_DAY_RE = re.compile(rf"(?<![\w:])(?:on\s+)?(?P<day>{_DAY})(?![\w:])", _I)
_TIME_RE = re.compile(
    r"(?<![\w:-])(?:at\s+)?(?:(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm|a\.m\.|p\.m\.)?"
    rf"|(?P<word>noon|midnight)|in\s+the\s+(?P<part>{PART}))(?![\w:])",
    _I,
)
# "in an hour", "every two weeks"
COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "ten": 10}
COUNT_WORDS |= {"fifteen": 15, "twenty": 20, "thirty": 30, "forty-five": 45}


@dataclass(frozen=True, slots=True)
class When:
    """A time phrase as the user said it ("tomorrow at 5pm"), resolved only once the turn's clock is known."""

    phrase: str


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A phrase with two plausible readings: the reply asks which one, and nothing changes."""

    phrase: str
    options: tuple[datetime, ...]


def resolve(when: When, context: TurnContext, *, default: time = DUE_TIME) -> datetime | Ambiguous | None:
    """The instant `when` names, in the user's zone; None if it names none."""
    text = re.sub(r"\s+", " ", when.phrase.strip().lower())
    now = context.local_now.replace(second=0, microsecond=0)
    if m := re.match(rf"in\s+(?P<n>{COUNT})\s+(?P<unit>{_UNIT})", text):
        count = COUNT_WORDS.get(m["n"]) or int(m["n"])
        rest = text[m.end() :].strip()
        if re.match(r"m(?:in|inute)|h(?:ou)?r", m["unit"]):  # elapsed time, across a DST change too
            minutes = count * (60 if m["unit"].startswith("h") else 1)
            moved = (context.now + timedelta(minutes=minutes)).astimezone(context.zone)
            return (
                moved.replace(second=0, microsecond=0) if not rest else _at(moved.date(), rest, None, context, default)
            )
        found = _parse(f"in {count} {m['unit']}", context)  # calendar days, weeks, months
        return None if found is None else _at(found.date(), rest, None, context, default)
    day_match = _DAY_RE.search(text)
    day_words = day_match["day"] if day_match else None
    rest = (text[: day_match.start()] + " " + text[day_match.end() :]).strip() if day_match else text
    rest = re.sub(r"^(?:,\s*)?(?:at\s+)?|,$", "", rest).strip()
    if day_words is None:
        return _at(None, rest, None, context, default)
    day = _day(day_words, now.date(), context)
    if isinstance(day, _SameWeekday):
        chosen = _time_of(rest, None, default)
        hour = chosen if isinstance(chosen, time) else default
        return Ambiguous(when.phrase, tuple(_wall(d, hour, context) for d in day.options_dates))
    if day is None:
        return None
    part = next((p for p in PARTS_OF_DAY if re.search(rf"\b{p}\b", day_words)), None)
    return _at(day, rest, part, context, default)


@dataclass(frozen=True, slots=True)
class _SameWeekday:
    options_dates: tuple[date, ...]


def _day(words: str, today: date, context: TurnContext) -> date | _SameWeekday | None:
    if words in {"today", "tonight"} or (words.startswith("this ") and re.fullmatch(rf"this\s+{PART}", words)):
        return today
    if words.startswith("tomorrow"):
        return today + timedelta(days=1)
    if m := re.fullmatch(rf"(?P<which>this\s+|next\s+)?(?P<wd>{WEEKDAY})(?:\s+{PART})?", words):
        found = _parse(m["wd"], context)
        if found is None:
            return None
        day = found.date()
        if day - today == timedelta(days=7):  # today is that weekday
            if m["which"] is None:
                return _SameWeekday((today, day))
            return today if m["which"].strip() == "this" else day
        return day
    if re.fullmatch(r"(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?month", words):
        return today.replace(day=calendar.monthrange(today.year, today.month)[1])
    if m := re.fullmatch(r"(?:the\s+)?(?P<n>\d{1,2})(?:st|nd|rd|th)?", words):
        return _next_day_of_month(int(m["n"]), today)
    found = _parse(words, context)
    if found is None:
        return None
    if (found.month, found.day) == (today.month, today.day):
        return today  # "on 3 December", said on 3 December: today, not next year
    return found.date()


def _next_day_of_month(n: int, today: date) -> date | None:
    """ "on the 3rd": this month's if it is still ahead, else the next month that has one."""
    if not 1 <= n <= 31:
        return None
    year, month = today.year, today.month
    for _ in range(13):
        if n <= calendar.monthrange(year, month)[1] and date(year, month, n) > today:
            return date(year, month, n)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _at(
    day: date | None, words: str, part: str | None, context: TurnContext, default: time
) -> datetime | Ambiguous | None:
    now = context.local_now
    today = now.date()
    if not words and day is None:
        return None
    chosen = _time_of(words, part, default, today=day in (None, today), now=now)
    if chosen is None:
        return None
    if isinstance(chosen, tuple):
        dates = (day or today,) * 2
        return Ambiguous(words, tuple(_wall(d, t, context) for d, t in zip(dates, chosen, strict=True)))
    if day is None:  # a time alone: today's, or tomorrow's once it has passed
        day = today if _wall(today, chosen, context) > now else today + timedelta(days=1)
    return _wall(day, chosen, context)


def _time_of(
    words: str, part: str | None, default: time, *, today: bool = False, now: datetime | None = None
) -> time | tuple[time, time] | None:
    words = words.strip()
    if not words:
        return PARTS_OF_DAY[part] if part else default
    m = _TIME_RE.fullmatch(words)
    if m is None:
        return None
    if m["word"]:
        return time(12) if m["word"].lower() == "noon" else time(0)
    if m["part"]:
        return PARTS_OF_DAY[m["part"].lower()]
    hour, minute = int(m["h"]), int(m["m"] or 0)
    if minute > 59 or hour > 23:
        return None
    if m["ampm"]:
        if not 1 <= hour <= 12:
            return None
        pm = m["ampm"].lower().startswith("p")
        return time(hour % 12 + (12 if pm else 0), minute)
    if hour == 0 or hour > 12 or m["h"].startswith("0"):
        return time(hour, minute)  # 24-hour clock: 17:00, 09:30
    morning, evening = time(hour % 12, minute), time(hour % 12 + 12, minute)
    if part is not None:
        return evening if part in _PM_PARTS and hour != 12 else morning if hour != 12 else time(12, minute)
    if hour == 12:
        return time(12, minute)
    if today and now is not None and now.time() >= morning and now.time() < evening:
        return evening  # "today at 9" at half past ten: only the evening is still ahead
    if hour == AMBIGUOUS_HOUR:
        return (morning, evening)
    return evening if hour <= 6 else morning


def clock_time(when: When, part: str | None, default: time) -> time | tuple[time, time] | None:
    """The time of day a phrase without a day names ("at 9", "9:30am"); None if it names a day."""
    text = re.sub(r"\s+", " ", when.phrase.strip().lower())
    if _DAY_RE.search(text) or (re.match(r"in\s", text) and not re.match(rf"in\s+the\s+{PART}$", text)):
        return None
    return _time_of(text, part, default)


def _wall(day: date, at: time, context: TurnContext) -> datetime:
    """`at` on `day` on the user's wall clock (zoneinfo picks the offset of that date, DST included)."""
    return datetime.combine(day, at, tzinfo=context.zone)


def _parse(text: str, context: TurnContext) -> datetime | None:
    settings: Any = {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": context.local_now.replace(tzinfo=None),
        "TIMEZONE": context.timezone,
        "RETURN_AS_TIMEZONE_AWARE": True,
    }
    found = dateparser.parse(text, languages=["en"], settings=settings)
    return None if found is None else found.astimezone(context.zone)


def warm_up() -> None:
    """Parse one date: dateparser loads its English data on first use (about 0.1 s)."""
    _parse("friday", TurnContext(now=datetime(2026, 1, 1, tzinfo=UTC)))


def first_occurrence(rule: str, at: time, context: TurnContext, *, day: date | None = None) -> datetime:
    """The first time `rule` (an RRULE of the supported subset) comes round from now, at `at` local time."""
    now = context.local_now.replace(tzinfo=None, second=0, microsecond=0)
    start = datetime.combine(day or now.date(), at)
    recurrence = rrule.rrulestr(f"RRULE:{rule}", dtstart=start)
    following = recurrence.after(now, inc=True) if day is None else start
    found = following or start
    return datetime.combine(found.date(), found.time(), tzinfo=context.zone)


def say(moment: datetime, context: TurnContext) -> str:
    """ "Tue 3 Dec, 17:00" in the user's zone (with the year when it is not this one)."""
    local = moment.astimezone(context.zone)
    year = f" {local.year}" if local.year != context.local_now.year else ""
    return f"{local:%a} {local.day} {local:%b}{year}, {local:%H:%M}"


def iso(moment: datetime) -> str:
    return moment.replace(second=0, microsecond=0).isoformat()


def window(name: str, context: TurnContext) -> tuple[datetime, datetime]:
    """ "today", "tomorrow", "this week", "next week", "this month": [start, end) on the user's wall clock.

    A week runs from Monday 00:00 to the next Monday 00:00.
    """
    today = context.local_now.date()
    if name == "today":
        start, end = today, today + timedelta(days=1)
    elif name == "tomorrow":
        start, end = today + timedelta(days=1), today + timedelta(days=2)
    elif name in {"this week", "next week"}:
        start = today - timedelta(days=today.weekday()) + timedelta(weeks=1 if name == "next week" else 0)
        end = start + timedelta(weeks=1)
    else:  # this month
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    midnight = time(0)
    return _wall(start, midnight, context), _wall(end, midnight, context)


_HALF_OF_DAY = re.compile(r"(?:in\s+the\s+)?(am|pm|a\.m\.|p\.m\.|morning|afternoon|evening|night)", _I)
_HALVES = {"morning": "am", "afternoon": "pm", "evening": "pm", "night": "pm"}


def restate(text: str, phrase: str, answer: str) -> str | None:
    """The message that asked about `phrase`, said again with the answer ("at 7" + "pm": "at 7 pm").

    The answer is "am"/"pm" (or "in the evening"), or a time phrase that replaces the one asked
    about ("19:00", "next Friday"); anything else is no answer (None).
    """
    answer = answer.strip().rstrip(".!?")
    spots = list(re.finditer(rf"(?<![\w:]){re.escape(phrase.strip())}(?![\w:])", text, _I))
    if not spots:
        return None
    spot = spots[-1]
    if half := _HALF_OF_DAY.fullmatch(answer):
        word = _HALVES.get(half[1].lower(), half[1])
        replacement = f"{spot[0]} {word}"
    elif re.fullmatch(PHRASE, answer, _I):
        replacement = answer
    else:
        return None
    return text[: spot.start()] + replacement + text[spot.end() :]

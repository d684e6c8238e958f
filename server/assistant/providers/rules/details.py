"""What a command says about a task besides its name: priority, tags, due time, reminder, repeat rule.

`split_details` takes them out of an "add" ("call mom tomorrow at 5pm #family, high priority")
and leaves the title. The phrasings:

- priority: "urgent", "important", "high priority", "low priority", "priority: low";
- tags: "#work", "tag it home", "tagged work and errands";
- due: a time phrase at the end or the start ("... tomorrow at 5pm", "by Friday", "due on the 3rd");
- reminder: "remind me 30 minutes before", "remind me at 9", or "remind me to ..." with a time;
- repeat: "every Monday", "daily", "every 2 weeks", "every other week", "on the first of every month".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from server.assistant.providers.rules.when import COUNT, COUNT_WORDS, PART, PHRASE, TIME, WEEKDAY, When

_I = re.IGNORECASE

Priority = str
"""low, normal or high (the tools' names)."""


@dataclass(frozen=True, slots=True)
class Repeat:
    rule: str
    """An RRULE of the tools' subset, e.g. FREQ=WEEKLY;BYDAY=MO."""
    part: str | None = None
    """ "every morning": the part of the day it comes round at, if the rule says one."""


@dataclass(frozen=True, slots=True)
class Details:
    priority: Priority | None = None
    tags: tuple[str, ...] = ()
    due: When | None = None
    remind: When | None = None
    remind_before: int | None = None
    """Minutes before the due time ("remind me 30 minutes before")."""
    repeat: Repeat | None = None
    snooze: int | None = None
    """Minutes from now ("snooze it for 10 minutes", "remind me again in 10 minutes")."""
    remove_tags: tuple[str, ...] = ()
    dismiss: bool = False
    """ "cancel the reminder": drop the pending reminder."""
    clear_due: bool = False
    """ "remove the due date": no due time any more."""
    stop_repeat: bool = False
    """ "stop repeating it": no repeat rule any more."""

    def __bool__(self) -> bool:
        return self != Details()


# --- priority ------------------------------------------------------------------------------------

_PRIORITY_WORDS = {"high": "high", "top": "high", "low": "low", "normal": "normal", "medium": "normal"}
_PRIORITY = re.compile(
    r"(?:^|[,;]?\s+)(?:(?:with|as|at|in)\s+)?(?:an?\s+)?(?:(?P<p>high|top|low|normal|medium)[- ]priority"
    r"|priority\s*[:=]?\s*(?P<q>high|low|normal|medium))(?=$|[\s,;.!])",
    _I,
)
_URGENT = re.compile(r"^(?:urgent|important|asap)\s*[:,!-]*\s+|[,;!]?\s+(?:it'?s\s+)?(?:urgent|important|asap)!*$", _I)


def priority_of(word: str) -> Priority:
    word = word.lower()
    return _PRIORITY_WORDS.get(word, "high")  # urgent, important, asap


# --- tags ----------------------------------------------------------------------------------------

TAG = r"#?[a-z][\w-]{0,31}"
TAGS = rf"{TAG}(?:(?:\s*,\s*|\s+and\s+){TAG})*"
_HASHTAG = re.compile(r"(?:^|(?<=\s))#(?P<t>[a-z][\w-]{0,31})\b", _I)
_TAG_PHRASE = re.compile(
    rf"[,;]?\s+(?:and\s+)?(?:tag(?:ged)?|label(?:led)?)\s+(?:it\s+)?(?:as\s+|with\s+)?(?P<t>{TAGS})$", _I
)


def tags_of(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t.lstrip("#").lower() for t in re.split(r"\s*,\s*|\s+and\s+|\s+", text.strip()) if t))


# --- repeating -----------------------------------------------------------------------------------

_DAY_CODES = {"mon": "MO", "tue": "TU", "wed": "WE", "thu": "TH", "fri": "FR", "sat": "SA", "sun": "SU"}
_NTH = r"(?P<n>\d{1,2})(?:st|nd|rd|th)?|(?P<word>first|second|third|last|last\s+day)"
_NTH_WORDS = {"first": 1, "second": 2, "third": 3, "last": -1, "last day": -1}
_UNITS = {"day": "DAILY", "week": "WEEKLY", "month": "MONTHLY", "year": "YEARLY"}
_WEEKDAYS = rf"{WEEKDAY}s?(?:(?:\s*,\s*|\s+and\s+|\s*,\s*and\s+){WEEKDAY}s?)*"
_REPEAT = re.compile(
    r"(?:^|[,;]?\s+)(?:(?:and\s+)?(?:repeat(?:ing|s)?|recurring)\s+)?(?P<r>"
    rf"(?:(?:on\s+)?the\s+(?:{_NTH})(?:\s+day)?\s+of\s+(?:every|each|the)\s+month"
    rf"|(?:(?:every|each)\s+month|monthly)\s+on\s+the\s+(?:{_NTH.replace('>', '2>')})(?:\s+day)?)"
    rf"|(?:every|each)\s+(?:single\s+)?(?:day|{PART})|daily|nightly"
    r"|(?:every|each)\s+(?:week|work(?:ing)?\s*)day|on\s+weekdays|weekdays"
    rf"|(?:every|each)\s+(?P<wd>{_WEEKDAYS})|on\s+(?P<wds>{WEEKDAY}s(?:(?:\s*,\s*|\s+and\s+){WEEKDAY}s)*)"
    rf"|(?:every|each)\s+(?P<count>{COUNT})\s+(?P<unit>day|week|month|year)s"
    r"|every\s+other\s+(?P<other>day|week|month|year)|biweekly|fortnightly"
    r"|(?:every|each)\s+(?P<every>week|month|year)|weekly|monthly|yearly|annually"
    r")(?=$|[\s,;.!])",
    _I,
)


def repeat_of(text: str) -> Repeat | None:
    """The rule a repeat phrase names ("every Monday" -> FREQ=WEEKLY;BYDAY=MO), None if it names none."""
    m = _REPEAT.fullmatch(" " + text.strip()) or _REPEAT.fullmatch(text.strip())
    return None if m is None else _rule(m)


def _rule(m: re.Match[str]) -> Repeat:
    said = m["r"].lower()
    if number := m["n"] or m["n2"]:
        return Repeat(f"FREQ=MONTHLY;BYMONTHDAY={int(number)}")
    if word := m["word"] or m["word2"]:
        day = _NTH_WORDS[re.sub(r"\s+", " ", word.lower())]
        return Repeat(f"FREQ=MONTHLY;BYMONTHDAY={day}")
    if part := re.fullmatch(rf"(?:every|each)\s+(?:single\s+)?({PART})|nightly", said):
        return Repeat("FREQ=DAILY", part[1] or "night")
    if re.fullmatch(r"(?:every|each)\s+(?:single\s+)?day|daily", said):
        return Repeat("FREQ=DAILY")
    if "weekday" in said or "working" in said or "workday" in said.replace(" ", ""):
        return Repeat("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR")
    if days := m["wd"] or m["wds"]:
        codes = {_DAY_CODES[d[:3].lower()] for d in re.findall(WEEKDAY, days, _I)}
        ordered = [c for c in _DAY_CODES.values() if c in codes]
        return Repeat(f"FREQ=WEEKLY;BYDAY={','.join(ordered)}")
    if m["count"]:
        count = COUNT_WORDS.get(m["count"].lower()) or int(m["count"])
        freq = _UNITS[m["unit"].lower()]
        return Repeat(freq if count == 1 else f"FREQ={freq};INTERVAL={count}")
    if m["other"] or said in {"biweekly", "fortnightly"}:
        return Repeat(f"FREQ={_UNITS[(m['other'] or 'week').lower()]};INTERVAL=2")
    word = (m["every"] or said).lower()
    freq = {"week": "WEEKLY", "weekly": "WEEKLY", "month": "MONTHLY", "monthly": "MONTHLY"}.get(word, "YEARLY")
    return Repeat(f"FREQ={freq}")


# --- times ---------------------------------------------------------------------------------------

_BEFORE = re.compile(
    rf"[,;]?\s+(?:and\s+)?(?:remind\s+me|with\s+a\s+reminder|reminder)\s+(?P<n>{COUNT})\s+"
    r"(?P<unit>minutes?|mins?|hours?|hrs?|days?)\s+(?:before(?:hand)?|early|earlier|ahead)$",
    _I,
)
_REMIND_AT = re.compile(
    rf"[,;]?\s+(?:and\s+)?(?:remind\s+me|with\s+a\s+reminder|reminder)\s+(?:(?:at|on|for)\s+)?(?P<when>{PHRASE})$", _I
)
_DUE_END = re.compile(rf"(?:^|[,;]?\s+)(?:(?:due|by|on|for|before|at|from|starting)\s+)?(?P<when>{PHRASE})$", _I)
_DUE_START = re.compile(rf"^(?:(?:due|by|on)\s+)?(?P<when>{PHRASE})\s*,?\s+(?=\S)", _I)
_DUE_MARKER = re.compile(r"[,;]?\s+(?:due|by)$", _I)
_THEN_TIME = re.compile(rf"\s*,?\s*(?:(?P<when>(?:at\s+)?{TIME})|(?P<part>{PART}))$", _I)
"""What may follow a repeat phrase: "every Monday at 9", "every Tuesday night"."""


def minutes_of(count: str, unit: str) -> int:
    n = COUNT_WORDS.get(count.lower()) or int(count)
    unit = unit.lower()
    return n * (60 if unit.startswith("h") else 1440 if unit.startswith("d") else 1)


def _next_piece(text: str, *, due_found: bool, whole: bool) -> tuple[str, re.Match[str]] | None:
    """The next detail to take off `text`, by kind; the due time only at the end, and only once.

    `whole`: the title is elsewhere (in quotes), so the due time may be all the text there is.
    """
    for kind, pattern in (("tags", _TAG_PHRASE), ("before", _BEFORE), ("remind", _REMIND_AT)):
        if m := pattern.search(text):
            return kind, m
    for m in _REPEAT.finditer(text):  # "every Monday at 9": the repeat, and the time it comes round at
        if not due_found and _THEN_TIME.fullmatch(text, m.end()):
            return "repeat_at", m
    if m := _PRIORITY.search(text) or _URGENT.search(text):
        return "priority", m
    if (m := _REPEAT.search(text)) and m.end() == len(text):
        return "repeat", m
    if not due_found and (m := _DUE_END.search(text)) and (m.start() > 0 or whole):
        return "due", m
    return None


def split_details(text: str, *, whole: bool = False) -> tuple[str, Details]:
    """`text` without the details it states, and those details (`whole`: see `_next_piece`)."""
    priority: Priority | None = None
    tags: list[str] = []
    due: When | None = None
    remind: When | None = None
    before: int | None = None
    repeat: Repeat | None = None
    for m in reversed(list(_HASHTAG.finditer(text))):
        tags.insert(0, m["t"].lower())
        text = text[: m.start()] + text[m.end() :]
    for _ in range(8):  # the pieces come in any order: peel them off the end until none is left
        text = text.strip().rstrip(".!,;")
        found = _next_piece(text, due_found=due is not None, whole=whole)
        if found is None:
            break
        kind, m = found
        if kind == "repeat_at":
            at = _THEN_TIME.fullmatch(text, m.end())
            repeat, due = _rule(m), When(at["when"]) if at and at["when"] else None
            if at and at["part"]:  # "every Tuesday night": the rule comes round at that part of the day
                repeat = replace(repeat, part=at["part"].lower())
            text = text[: m.start()]
            continue
        if kind == "tags":
            tags.extend(tags_of(m["t"]))
        elif kind == "before":
            before = minutes_of(m["n"], m["unit"])
        elif kind == "remind":
            remind = When(m["when"])
        elif kind == "priority":
            priority = priority_of(m.groupdict().get("p") or m.groupdict().get("q") or "high")
        elif kind == "repeat":
            repeat = _rule(m)
        else:
            due = When(m["when"])
        text = text[: m.start()] + " " + text[m.end() :]
    text = text.strip()
    if due is None and (start := _DUE_START.match(text)):
        due, text = When(start["when"]), text[start.end() :]
    if repeat is None and (front := _REPEAT.match(text)):  # "every Monday" in front: "every monday call mom"
        repeat, text = _rule(front), text[front.end() :]
    text = _DUE_MARKER.sub("", re.sub(r"\s+", " ", text).strip())
    details = Details(
        priority=priority,
        tags=tuple(dict.fromkeys(tags)),
        due=due,
        remind=remind,
        remind_before=before,
        repeat=repeat,
    )
    return text, details

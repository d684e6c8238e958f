"""How the rules agent names a task ("task 3", "#3", "it", title words) and finds the tasks a name fits."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

MAX_TASK_ID = 2**31 - 1
"""Ids are 32-bit integers in the database; a bigger number cannot be a task, so it is not worth a call."""


@dataclass(frozen=True, slots=True)
class ById:
    task_id: int


@dataclass(frozen=True, slots=True)
class ByWords:
    phrase: str
    """What the user said, for the reply ("I couldn't find a task matching ...")."""
    words: frozenset[str]
    verbs: frozenset[str] = frozenset()
    """For a report ("I paid the bills"): the verb's possible base forms, one of which the title must hold."""


@dataclass(frozen=True, slots=True)
class Pronoun:
    """ "it", "that one": the task last mentioned in the conversation."""


@dataclass(frozen=True, slots=True)
class Everything:
    """ "all", "them", "completed tasks": the tools act on one task at a time, so this is refused."""


@dataclass(frozen=True, slots=True)
class Unnamed:
    """No task named at all ("delete"): the agent asks which one rather than guess."""


Ref = ById | ByWords | Pronoun | Everything | Unnamed


@dataclass(frozen=True, slots=True)
class TaskView:
    id: int
    title: str
    completed: bool
    description: str | None = None
    due_at: str | None = None
    """ISO 8601 with the user's offset, as list_tasks gives it."""
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    recurrence: str | None = None


@dataclass(frozen=True, slots=True)
class Match:
    kind: Literal["one", "several", "suggest", "none"]
    tasks: tuple[TaskView, ...] = ()


NUMBER_WORDS = dict(
    zip(("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"), range(1, 11), strict=True)
)
_NUMBER = r"\d+|" + "|".join(NUMBER_WORDS)
# Number words only after a noun ("task three"): "the one about groceries" is not task 1.
_BY_ID = re.compile(
    rf"(?:(?:the|my)\s+)?(?:(?:tasks?|todo|to-do|item|entry|number|no\.?|num)\s*(?:number\s*|no\.?\s*)?#?\s*(?P<named>{_NUMBER})"
    r"|#\s*(?P<hash>\d+)|(?P<bare>\d+))"
)
_PRONOUNS = frozenset(
    {"it", "its", "it's", "that", "this", "that one", "this one", "that task", "this task", "the task", "the one"}
    | {"the same one", "the same task", "same one", "same task", "the last one", "the one i just added"}
)
_TRAILING_NOISE = re.compile(r"(?:\s+(?:too|as well|also|again|please|now|for me|then|anymore|any more))+$")
_BULK_MARKERS = frozenset({"all", "both", "everything", "them", "tasks", "todos", "ones", "items"})
_BULK_FILLER = frozenset({"completed", "done", "finished", "pending", "old", "of", "my", "the", "list", "on", "every"})
_BULK_FILLER |= frozenset({"task", "in", "these", "those"})
_REF_FILLER = re.compile(
    r"^(?:(?:the|my|a|that|this)\s+)?(?:(?:task|todo|to-do|item|one|reminder|entry)\s+"
    r"(?:called|named|titled|about|for|to|saying|that says|with)\s+)?"
)
_STOP_WORDS = frozenset(
    {"the", "a", "an", "my", "task", "todo", "item", "one", "reminder", "called", "named", "titled", "about", "for"}
    | {"of", "to", "and", "on", "in", "with", "at", "that", "this", "is", "entry"}
)
_QUOTES = "\"'`"
_STRAIGHT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def parse_refs(text: str) -> list[Ref]:
    """One reference, or several ids ("tasks 1 and 2", "#3, #4"); an empty list if nothing is named."""
    parts = [p for p in re.split(r"\s*(?:,|&|\band\b)\s*", _clean(text)) if p]
    if len(parts) > 1:
        refs = [parse_ref(p) for p in parts]
        if all(isinstance(r, ById) for r in refs):
            return [r for r in refs if r is not None]
    ref = parse_ref(text)
    return [] if ref is None else [ref]


def parse_ref(text: str) -> Ref | None:
    cleaned = _clean(text)
    if not cleaned:
        return None
    if m := _BY_ID.fullmatch(cleaned):
        number = m["named"] or m["hash"] or m["bare"]
        return ById(int(number) if number.isdigit() else NUMBER_WORDS[number])
    if cleaned in _PRONOUNS:
        return Pronoun()
    tokens = set(re.findall(r"[a-z0-9]+", cleaned))
    if tokens & _BULK_MARKERS and tokens <= _BULK_MARKERS | _BULK_FILLER:
        return Everything()
    phrase = _REF_FILLER.sub("", cleaned, count=1)
    phrase = re.sub(r"\s+(?:task|todo|item|one|reminder)$", "", phrase)
    significant = words(phrase)
    if not significant:
        return Pronoun()  # "the task", "my todo": nothing left but the noun
    return ByWords(phrase=phrase, words=significant)


def straighten(text: str) -> str:
    """Typographic quotes as plain ones, so phones' "smart" punctuation reads like a keyboard's."""
    return text.translate(_STRAIGHT)


def _clean(text: str) -> str:
    text = straighten(text).strip().strip(_QUOTES + ".,!?;: ").lower()
    text = _TRAILING_NOISE.sub("", text)
    return re.sub(r"\s+", " ", text.strip(_QUOTES + ".,!?;: "))


def words(text: str) -> frozenset[str]:
    """The words that identify a title: lowercase, without filler, singular ("groceries" -> "grocery")."""
    tokens = re.findall(r"[a-z0-9]+", straighten(text).lower().replace("'s", ""))
    return frozenset(_singular(t) for t in tokens if t not in _STOP_WORDS)


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def find(ref: ByWords, tasks: Iterable[TaskView], *, prefer: Literal["pending", "completed"] | None = None) -> Match:
    """Tasks whose title holds every word of `ref`; an exact title wins over longer ones.

    `prefer` picks among the fits: completing prefers pending tasks, so "check off groceries"
    ignores last week's groceries, and reopening prefers completed ones. A report fits a title
    with its verb ("paid the bills": "Pay the bills"), or one that is its object alone ("Bills").
    With no fit, tasks sharing a word are offered as suggestions, never acted on.
    """
    pool = sorted(tasks, key=lambda t: t.id)
    full = [t for t in pool if ref.words <= words(t.title) and (not ref.verbs or ref.verbs & words(t.title))]
    if not full and ref.verbs:
        full = [t for t in pool if words(t.title) == ref.words]
    if prefer is not None and any(t.completed == (prefer == "completed") for t in full):
        full = [t for t in full if t.completed == (prefer == "completed")]
    exact = [t for t in full if words(t.title) - ref.verbs == ref.words]
    if len(exact) == 1:
        return Match("one", (exact[0],))
    if len(full) == 1:
        return Match("one", (full[0],))
    if full:
        return Match("several", tuple(full))
    overlap = sorted(
        (t for t in pool if ref.words & words(t.title)), key=lambda t: (-len(ref.words & words(t.title)), t.id)
    )
    return Match("suggest", tuple(overlap[:5])) if overlap else Match("none")


def task_views(result: Any) -> list[TaskView] | None:
    """A `list_tasks` result as TaskViews; None if it is not a list (an error result)."""
    if not isinstance(result, list):
        return None
    views = []
    for item in result:
        if isinstance(item, dict) and isinstance(item.get("id"), int) and isinstance(item.get("title"), str):
            description, due_at, tags = item.get("description"), item.get("due_at"), item.get("tags")
            recurrence, priority = item.get("recurrence"), item.get("priority")
            views.append(
                TaskView(
                    id=item["id"],
                    title=item["title"],
                    completed=bool(item.get("completed")),
                    description=description if isinstance(description, str) else None,
                    due_at=due_at if isinstance(due_at, str) else None,
                    priority=priority if isinstance(priority, str) else "normal",
                    tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
                    recurrence=recurrence if isinstance(recurrence, str) else None,
                )
            )
    return views


def in_range(task_id: int) -> bool:
    return 1 <= task_id <= MAX_TASK_ID

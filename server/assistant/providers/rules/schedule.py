"""A command's details as tool arguments: times resolved in the user's zone, a repeat anchored on its first day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from server.assistant.providers.base import TurnContext
from server.assistant.providers.rules.details import Details
from server.assistant.providers.rules.when import (
    DUE_TIME,
    PARTS_OF_DAY,
    REMIND_TIME,
    Ambiguous,
    clock_time,
    first_occurrence,
    iso,
    resolve,
)


@dataclass(frozen=True, slots=True)
class Missing:
    """What the details cannot do without: "before" needs a due time; a phrase that names no time."""

    what: str
    phrase: str = ""


def tool_arguments(
    details: Details, context: TurnContext, *, update: bool = False, due_at: datetime | None = None
) -> dict[str, Any] | Ambiguous | Missing:
    """`details` as add_task (or, with `update`, update_task) arguments.

    `due_at` is the task's current due time: "30 minutes before" counts back from it, and a new
    repeat rule keeps it (a task without one gets the rule's first occurrence).
    """
    args: dict[str, Any] = {}
    if details.priority:
        args["priority"] = details.priority
    if details.tags:
        args["add_tags" if update else "tags"] = list(details.tags)
    if details.remove_tags:
        args["remove_tags"] = list(details.remove_tags)
    if update and details.due is None and details.repeat is not None and due_at is not None:
        args["recurrence"] = details.repeat.rule
        due = None
    else:
        due = _due(details, context)
    if isinstance(due, Ambiguous | Missing):
        return due
    if due is not None:
        args["due_at"] = iso(due)
        if details.repeat:
            args["recurrence"] = details.repeat.rule
    if details.remind is not None:
        same = details.remind == details.due and due is not None
        remind = due if same else resolve(details.remind, context, default=REMIND_TIME)
        if remind is None:
            return Missing("time", details.remind.phrase)
        if isinstance(remind, Ambiguous):
            return remind
        args["remind_at"] = iso(remind)
    if details.remind_before is not None:
        anchor = due or due_at
        if anchor is None:
            return Missing("due")
        args["remind_at"] = iso(anchor - timedelta(minutes=details.remind_before))
    if details.snooze is not None:
        args["snooze_minutes"] = details.snooze
    if details.dismiss:
        args["dismiss_reminder"] = True
    if details.clear_due:
        args["due_at"] = None
    if details.stop_repeat:
        args["recurrence"] = None
    return args


def _due(details: Details, context: TurnContext) -> datetime | Ambiguous | Missing | None:
    repeat = details.repeat
    part = repeat.part if repeat else None
    # "remind me to renew the lease on Monday": a reminder's morning, not a deadline's evening
    deadline = REMIND_TIME if details.remind is not None and details.remind == details.due else DUE_TIME
    default = PARTS_OF_DAY.get(part or "", deadline)
    if details.due is None:
        return None if repeat is None else first_occurrence(repeat.rule, default, context)
    if repeat is not None:
        at = clock_time(details.due, None, default)
        if isinstance(at, tuple):
            return Ambiguous(details.due.phrase, tuple(first_occurrence(repeat.rule, t, context) for t in at))
        if at is not None:  # "every Monday at 9": the first Monday, at 9
            return first_occurrence(repeat.rule, at, context)
    found = resolve(details.due, context, default=default)
    if found is None:
        return Missing("time", details.due.phrase)
    if isinstance(found, Ambiguous) or repeat is None:
        return found
    return first_occurrence(repeat.rule, found.timetz().replace(tzinfo=None), context, day=found.date())


def needs_due(details: Details) -> bool:
    """Whether the arguments depend on the task's current due time (an update that cannot see it otherwise)."""
    return details.due is None and (details.remind_before is not None or details.repeat is not None)

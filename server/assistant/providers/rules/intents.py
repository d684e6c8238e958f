"""What a user message can ask of the rules agent: add, list, complete, reopen, delete, update, or just talk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from server.assistant.providers.rules.details import Details
from server.assistant.providers.rules.refs import Ref

Status = Literal["all", "pending", "completed"]
Action = Literal["complete", "reopen", "delete", "update"]
Topic = Literal[
    "help", "greeting", "thanks", "bye", "how_are_you", "identity", "ack", "never_mind", "unknown",
    "ask_add", "ask_update", "ask_action", "bulk", "too_long", "cant_undo", "bad_time",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Add:
    title: str
    description: str | None = None
    details: Details = field(default_factory=Details)
    stated: bool = False
    """Said without a command word ("dentist appointment tomorrow at 3pm"): an answer to a question comes first."""


@dataclass(frozen=True, slots=True)
class ListTasks:
    status: Status = "all"
    priority: str | None = None
    tag: str | None = None
    query: str | None = None
    """Search words ("find tasks about the report")."""
    overdue: bool = False
    window: str | None = None
    """When they are due: "today", "tomorrow", "this week", "next week", "this month"."""
    sort: str | None = None
    """created, due, priority or title."""

    @property
    def filtered(self) -> bool:
        return self != ListTasks(self.status)


@dataclass(frozen=True, slots=True)
class Act:
    """Complete, reopen, delete or update the task `ref` names."""

    action: Action
    ref: Ref
    title: str | None = None
    description: str | None = None
    details: Details = field(default_factory=Details)
    """For "update": priority, tags, due time, reminder, repeat rule, snooze."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A bare reply to "which one?": an id ("3", "#3"), a position ("the second one") or "yes"."""

    kind: Literal["id", "ordinal", "yes"]
    value: int = 0


@dataclass(frozen=True, slots=True)
class Undo:
    """ "undo that": the planner works out from the conversation what it takes back."""


@dataclass(frozen=True, slots=True)
class Say:
    """Nothing to do with the tools: help, small talk, or a question back to the user."""

    topic: Topic
    task_id: int | None = None
    """For "ask_action": the task the user named without saying what to do with it."""


Intent = Add | ListTasks | Act | Answer | Undo | Say

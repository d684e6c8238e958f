"""What a step of the rules agent found: the outcomes its reply is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from server.assistant.providers.rules.intents import Act, ListTasks, Say, Status
from server.assistant.providers.rules.refs import TaskView
from server.assistant.providers.rules.when import Ambiguous


@dataclass(frozen=True, slots=True)
class Changed:
    """A tool created, completed, deleted or updated (renamed, described, reopened) a task."""

    tool: str
    result: dict[str, Any]
    fields: tuple[str, ...] = ()
    """For update_task: which of title, description and completed it was given."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """What the call was given: the reply confirms its due time, reminder, repeat, priority and tags."""


@dataclass(frozen=True, slots=True)
class Listed:
    status: Status
    tasks: tuple[TaskView, ...]
    query: ListTasks | None = None
    """The filters it was listed with, for the reply's header."""


@dataclass(frozen=True, slots=True)
class AskWhen:
    """A time phrase with two readings ("at 7", "on Friday" said on a Friday): nothing changed."""

    ambiguous: Ambiguous


@dataclass(frozen=True, slots=True)
class NeedsDue:
    """ "remind me 30 minutes before" a task that has no due time: nothing changed."""

    task_id: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    tool: str
    error: str
    message: str
    task_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unresolved:
    """The reference fit several tasks, none, or (for "it") nothing clear: nothing was changed."""

    act: Act
    reason: Literal["several", "suggest", "none", "unclear"]
    query: str = ""
    candidates: tuple[TaskView, ...] = ()

    @property
    def asks(self) -> bool:
        """Whether the reply asks the user to pick, so that the next message may be the answer."""
        return self.reason != "none"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """The task named by title words is already done (when completing) or pending (when reopening): no call."""

    task: TaskView


Outcome = Changed | Listed | Failed | Unresolved | Unchanged | Say | AskWhen | NeedsDue

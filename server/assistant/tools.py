"""The assistant's task tools: names, argument schemas and execution, one place for chat and MCP.

The user is never an argument: the server passes the authenticated user's id, so neither a
model nor a message can reach another user's tasks. Errors come back as results
(`{"error": ..., "message": ...}`) for the agent to explain, never as exceptions.

Results keep their original shapes; `list_tasks` items carry the new fields too. Times in results
are ISO 8601 with the user's own UTC offset (`2026-12-03T17:00:00+01:00` for a
user in Europe/Berlin): the exact instant, and the wall-clock time to say back to the user.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.abuse import Limits
from server.assistant.providers.base import ToolCallRequest, ToolSpec
from server.clock import SYSTEM_CLOCK, Clock
from server.db import tasks, users
from server.db.models import PRIORITIES, Task
from server.db.outbox import Outbox
from server.errors import InvalidInputError, NotFoundError, RateLimitedError
from server.fields import DbId
from server.schemas import (
    Description,
    Instant,
    Priority,
    Recurrence,
    SearchText,
    SnoozeMinutes,
    Tag,
    Tags,
    Title,
    one_of_reminder_changes,
)

LIST_LIMIT = 200

_WHEN = "an ISO 8601 date-time with a UTC offset, e.g. 2026-12-03T17:00:00+01:00"
_RULE = "an RRULE: FREQ=DAILY|WEEKLY|MONTHLY|YEARLY, INTERVAL=n, BYDAY=MO,TU,... (weekly), BYMONTHDAY=n (monthly)"


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddTask(_Args):
    title: Title = Field(description="Short title of the task, at most 200 characters")
    description: Description | None = Field(default=None, description="Optional details, at most 1000 characters")
    priority: Priority | None = Field(default=None, description="low, normal (the default) or high")
    tags: Tags | None = Field(default=None, description='Up to 10 tags, e.g. ["work"]; stored lower-case')
    due_at: Instant | None = Field(default=None, description=f"When the task is due: {_WHEN}")
    remind_at: Instant | None = Field(default=None, description=f"When to remind the user, in the future: {_WHEN}")
    recurrence: Recurrence | None = Field(
        default=None, description=f"How the task repeats (needs due_at): {_RULE}; e.g. FREQ=WEEKLY;BYDAY=MO"
    )


class ListTasks(_Args):
    status: Literal["all", "pending", "completed"] = Field(default="all", description="Which tasks to list")
    priority: Priority | None = Field(default=None, description="Only tasks of this priority")
    tag: Tag | None = Field(default=None, description="Only tasks with this tag")
    due_before: Instant | None = Field(default=None, description=f"Only tasks due before this time: {_WHEN}")
    due_after: Instant | None = Field(default=None, description=f"Only tasks due at or after this time: {_WHEN}")
    overdue: bool | None = Field(
        default=None, description="true: only pending tasks whose due time has passed; false: all but those"
    )
    query: SearchText | None = Field(default=None, description="Words to search for in titles and descriptions")
    sort: tasks.SortKey = Field(default="created", description="created, due (soonest first), priority or title")
    order: tasks.Order | None = Field(
        default=None, description="asc or desc; default: the sort's natural order (high priority first)"
    )
    limit: int = Field(default=LIST_LIMIT, ge=1, le=LIST_LIMIT, description="At most this many tasks")


class TaskRef(_Args):
    task_id: DbId = Field(description="The task's id, as shown by list_tasks")


class UpdateTask(TaskRef):
    title: Title | None = Field(default=None, description="New title")
    description: Description | None = Field(default=None, description="New description; null clears it")
    completed: bool | None = Field(default=None, description="false reopens a completed task; true completes it")
    priority: Priority | None = Field(default=None, description="New priority: low, normal or high")
    tags: Tags | None = Field(default=None, description="Replaces every tag of the task")
    add_tags: Tags | None = Field(default=None, description="Tags to add, keeping the others")
    remove_tags: Tags | None = Field(default=None, description="Tags to remove")
    due_at: Instant | None = Field(default=None, description=f"New due time, {_WHEN}; null clears it")
    remind_at: Instant | None = Field(default=None, description=f"New reminder time, {_WHEN}; null removes it")
    recurrence: Recurrence | None = Field(default=None, description=f"New rule, {_RULE}; null stops the repeating")
    snooze_minutes: SnoozeMinutes | None = Field(
        default=None, description='Remind again this many minutes from now ("remind me again in 10 minutes")'
    )
    dismiss_reminder: Literal[True] | None = Field(default=None, description="true: drop the pending reminder")

    @model_validator(mode="after")
    def _one_reminder_change(self) -> UpdateTask:
        one_of_reminder_changes(self.model_fields_set)
        return self


def _local(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def _fields(task: Task, zone: ZoneInfo) -> dict[str, Any]:
    """The new fields of a task, as every tool result carries them."""
    return {
        "priority": PRIORITIES[task.priority],
        "tags": list(task.tags),
        "due_at": _local(task.due_at, zone),
        "remind_at": _local(task.remind_at, zone),
        "recurrence": task.recurrence,
    }


async def _zone(outbox: Outbox, user_id: int) -> ZoneInfo:
    user = await users.get(outbox.session, user_id)
    return ZoneInfo(user.timezone if user is not None else "UTC")


async def add_task(outbox: Outbox, user_id: int, args: AddTask, now: datetime) -> dict[str, Any]:
    task = await tasks.create(
        outbox,
        user_id,
        title=args.title,
        description=args.description,
        priority=args.priority or "normal",
        tags=args.tags or (),
        due_at=args.due_at,
        remind_at=args.remind_at,
        recurrence_rule=args.recurrence,
        now=now,
    )
    return {"task_id": task.id, "status": "created", "title": task.title}


async def list_tasks(outbox: Outbox, user_id: int, args: ListTasks, now: datetime) -> list[dict[str, Any]]:
    query = tasks.TaskQuery(
        status=args.status,
        priorities=(args.priority,) if args.priority else (),
        tags=(args.tag,) if args.tag else (),
        due_before=args.due_before,
        due_after=args.due_after,
        overdue=args.overdue,
        text=args.query,
        sort=args.sort,
        order=args.order,
    )
    rows, _ = await tasks.list_for_user(outbox.session, user_id, query, now=now, limit=args.limit)
    zone = await _zone(outbox, user_id)
    return [
        {
            "id": t.id,
            "title": t.title,
            "description": t.description,
            "completed": t.completed,
            **_fields(t, zone),
            "overdue": not t.completed and t.due_at is not None and t.due_at < now,
        }
        for t in rows
    ]


async def complete_task(outbox: Outbox, user_id: int, args: TaskRef, now: datetime) -> dict[str, Any]:
    return await _change(outbox, user_id, args.task_id, {"completed": True}, "completed", now)


async def delete_task(outbox: Outbox, user_id: int, args: TaskRef, now: datetime) -> dict[str, Any]:
    task = await tasks.delete(outbox, user_id, args.task_id)
    return {"task_id": task.id, "status": "deleted", "title": task.title}


async def update_task(outbox: Outbox, user_id: int, args: UpdateTask, now: datetime) -> dict[str, Any]:
    changes = args.model_dump(exclude_unset=True, exclude={"task_id"})
    # null means "no change" for what cannot be empty; it clears a description, due time, reminder or rule
    nullable = {"description", "due_at", "remind_at", "recurrence"}
    changes = {field: value for field, value in changes.items() if value is not None or field in nullable}
    if not changes:
        return {
            "error": "invalid_arguments",
            "message": "Give something to change: title, description, completed, priority, tags, add_tags, "
            "remove_tags, due_at, remind_at, recurrence, snooze_minutes or dismiss_reminder",
        }
    return await _change(outbox, user_id, args.task_id, changes, "updated", now)


async def _change(
    outbox: Outbox, user_id: int, task_id: int, changes: dict[str, Any], status: str, now: datetime
) -> dict[str, Any]:
    """A change's result; completing a repeating task also names its next occurrence (`next`)."""
    updated = await tasks.update(outbox, user_id, task_id, changes, now=now)
    task, following = updated
    result: dict[str, Any] = {"task_id": task.id, "status": status, "title": task.title}
    if following is not None:
        zone = await _zone(outbox, user_id)
        result["next"] = {"task_id": following.id, "title": following.title, **_fields(following, zone)}
    return result


_Handler = Callable[[Outbox, int, Any, datetime], Awaitable[Any]]

#: name -> (argument model, handler, description)
TOOLS: dict[str, tuple[type[_Args], _Handler, str]] = {
    "add_task": (
        AddTask,
        add_task,
        "Create a new task for the user, optionally with a priority, tags, a due time, a reminder and a repeat rule.",
    ),
    "list_tasks": (
        ListTasks,
        list_tasks,
        "List the user's tasks: filter by status, priority, tag, due time, overdue, or search words; sort them.",
    ),
    "complete_task": (
        TaskRef,
        complete_task,
        "Mark a task as completed; a repeating task then gets its next occurrence (in the result's `next`).",
    ),
    "delete_task": (TaskRef, delete_task, "Delete a task."),
    "update_task": (
        UpdateTask,
        update_task,
        "Change a task: title, description, completed (false reopens it), priority, tags, due time, reminder "
        "(set, snooze or dismiss it) or repeat rule.",
    ),
}


DESTRUCTIVE = frozenset({"delete_task"})
"""Tools that destroy data: they count against the lower RATE_LIMIT_DESTRUCTIVE_CALLS budget as well."""


def tool_specs() -> list[ToolSpec]:
    return [
        ToolSpec(name=name, description=description, parameters=_schema(model))
        for name, (model, _, description) in TOOLS.items()
    ]


def _schema(model: type[_Args]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema


async def run_tool(
    outbox: Outbox, user_id: int, call: ToolCallRequest, *, limits: Limits, clock: Clock = SYSTEM_CLOCK
) -> Any:
    """Execute `call` for `user_id` in the outbox's transaction; errors become results.

    Every call counts against the user's tool-call budget (deletions against a lower one too),
    checked before anything runs: over it, a `rate_limited` result and nothing changes.
    """
    entry = TOOLS.get(call.name)
    if entry is None:
        return {"error": "unknown_tool", "message": f"There is no tool named {call.name!r}"}
    try:
        await limits.tool_call(user_id, destructive=call.name in DESTRUCTIVE)
    except RateLimitedError as exc:
        return {"error": "rate_limited", "message": exc.detail, "retry_after": exc.extra["retry_after"]}
    model, handler, _ = entry
    try:
        args = model.model_validate(call.arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return {"error": "invalid_arguments", "message": problems}
    try:
        return await handler(outbox, user_id, args, clock.now())
    except NotFoundError:
        task_id = getattr(args, "task_id", None)
        return {"error": "not_found", "message": f"Task {task_id} not found", "task_id": task_id}
    except InvalidInputError as exc:
        return {"error": "invalid_arguments", "message": exc.detail}

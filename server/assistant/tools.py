"""The assistant's task tools: names, argument schemas and execution, one place for chat and MCP.

The user is never an argument: the server passes the authenticated user's id, so neither a
model nor a message can reach another user's tasks. Errors come back as results
(`{"error": ..., "message": ...}`) for the agent to explain, never as exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.abuse import Limits
from server.assistant.providers.base import ToolCallRequest, ToolSpec
from server.db import tasks
from server.db.outbox import Outbox
from server.errors import NotFoundError, RateLimitedError
from server.fields import DbId
from server.schemas import Description, Title

LIST_LIMIT = 200


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddTask(_Args):
    title: Title = Field(description="Short title of the task, at most 200 characters")
    description: Description | None = Field(default=None, description="Optional details, at most 1000 characters")


class ListTasks(_Args):
    status: Literal["all", "pending", "completed"] = Field(default="all", description="Which tasks to list")


class TaskRef(_Args):
    task_id: DbId = Field(description="The task's id, as shown by list_tasks")


class UpdateTask(TaskRef):
    title: Title | None = Field(default=None, description="New title")
    description: Description | None = Field(default=None, description="New description")
    completed: bool | None = Field(default=None, description="false reopens a completed task; true completes it")


async def add_task(outbox: Outbox, user_id: int, args: AddTask) -> dict[str, Any]:
    task = await tasks.create(outbox, user_id, title=args.title, description=args.description)
    return {"task_id": task.id, "status": "created", "title": task.title}


async def list_tasks(outbox: Outbox, user_id: int, args: ListTasks) -> list[dict[str, Any]]:
    rows, _ = await tasks.list_for_user(outbox.session, user_id, status=args.status, limit=LIST_LIMIT)
    return [{"id": t.id, "title": t.title, "description": t.description, "completed": t.completed} for t in rows]


async def complete_task(outbox: Outbox, user_id: int, args: TaskRef) -> dict[str, Any]:
    task = await tasks.update(outbox, user_id, args.task_id, {"completed": True})
    return {"task_id": task.id, "status": "completed", "title": task.title}


async def delete_task(outbox: Outbox, user_id: int, args: TaskRef) -> dict[str, Any]:
    task = await tasks.delete(outbox, user_id, args.task_id)
    return {"task_id": task.id, "status": "deleted", "title": task.title}


async def update_task(outbox: Outbox, user_id: int, args: UpdateTask) -> dict[str, Any]:
    changes = args.model_dump(exclude_unset=True, exclude={"task_id"})
    # null means "no change" for the columns that cannot be empty; a null description clears it
    changes = {field: value for field, value in changes.items() if value is not None or field == "description"}
    if not changes:
        return {"error": "invalid_arguments", "message": "Give a new title, description or completed"}
    task = await tasks.update(outbox, user_id, args.task_id, changes)
    return {"task_id": task.id, "status": "updated", "title": task.title}


_Handler = Callable[[Outbox, int, Any], Awaitable[Any]]

#: name -> (argument model, handler, description)
TOOLS: dict[str, tuple[type[_Args], _Handler, str]] = {
    "add_task": (AddTask, add_task, "Create a new task for the user."),
    "list_tasks": (ListTasks, list_tasks, "List the user's tasks, optionally only pending or completed ones."),
    "complete_task": (TaskRef, complete_task, "Mark a task as completed."),
    "delete_task": (TaskRef, delete_task, "Delete a task."),
    "update_task": (
        UpdateTask,
        update_task,
        "Change a task's title, description or completed state (completed=false reopens it).",
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


async def run_tool(outbox: Outbox, user_id: int, call: ToolCallRequest, *, limits: Limits) -> Any:
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
        return await handler(outbox, user_id, args)
    except NotFoundError:
        task_id = getattr(args, "task_id", None)
        return {"error": "not_found", "message": f"Task {task_id} not found", "task_id": task_id}

"""The user's tasks. Every change is also pushed to the user's open sockets as a `task.*` event."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from server.api.deps import CountChange, CountDeletion, OwnerId, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.db import tasks
from server.db.models import TAGS_MAX, Task
from server.fields import DbId, Offset
from server.runtime import Runtime
from server.schemas import (
    Instant,
    Priority,
    SearchText,
    Tag,
    TaskCreate,
    TaskPublic,
    TasksPublic,
    TaskStatus,
    TaskUpdate,
)

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=error_responses(401, 403))
# Changes count against the user's tool-call budget (RATE_LIMIT_TOOL_CALLS), deletions a lower one too.


@router.get("", response_model=TasksPublic)
async def list_tasks(
    user_id: OwnerId,
    session: SessionDep,
    runtime: RuntimeDep,
    status: TaskStatus = "all",
    priority: Annotated[list[Priority] | None, Query(description="Any of these (repeat the parameter)")] = None,
    tag: Annotated[
        list[Tag] | None, Query(max_length=TAGS_MAX, description="All of these (repeat the parameter)")
    ] = None,
    due_before: Annotated[Instant | None, Query(description="due_at before this instant (ISO 8601, offset)")] = None,
    due_after: Annotated[Instant | None, Query(description="due_at at or after this instant")] = None,
    overdue: Annotated[
        bool | None, Query(description="true: pending tasks past their due time; false: all the others")
    ] = None,
    q: Annotated[SearchText | None, Query(description="Words to find in title and description")] = None,
    sort: tasks.SortKey = "created",
    order: Annotated[
        tasks.Order | None, Query(description="Default: created, due and title ascending; priority high first")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[Offset, Query()] = 0,
) -> TasksPublic:
    """Tasks matching every filter given, one page at a time, in creation order unless `sort` says otherwise."""
    query = tasks.TaskQuery(
        status=status,
        priorities=tuple(priority or ()),
        tags=tuple(tag or ()),
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        text=q,
        sort=sort,
        order=order,
    )
    rows, count = await tasks.list_for_user(
        session, user_id, query, now=runtime.clock.now(), limit=limit, offset=offset
    )
    return TasksPublic(data=[TaskPublic.model_validate(task) for task in rows], count=count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses=error_responses(429),
    dependencies=[CountChange],
)
async def create_task(user_id: OwnerId, body: TaskCreate, runtime: RuntimeDep) -> TaskPublic:
    """A new task. 422 for a reminder in the past, or a repeating task without a due time."""
    async with runtime.transaction() as outbox:
        task = await tasks.create(
            outbox,
            user_id,
            title=body.title,
            description=body.description,
            priority=body.priority,
            tags=body.tags,
            due_at=body.due_at,
            remind_at=body.remind_at,
            recurrence_rule=body.recurrence,
            now=runtime.clock.now(),
        )
    return _public(runtime, task)


@router.get("/{task_id}", response_model=TaskPublic, responses=error_responses(404))
async def get_task(user_id: OwnerId, task_id: DbId, session: SessionDep) -> TaskPublic:
    return TaskPublic.model_validate(await tasks.get(session, user_id, task_id))


@router.patch("/{task_id}", response_model=TaskPublic, responses=error_responses(404, 429), dependencies=[CountChange])
async def update_task(user_id: OwnerId, task_id: DbId, body: TaskUpdate, runtime: RuntimeDep) -> TaskPublic:
    """Change any of the fields; those left out stay as they are, null clears description, due_at,
    remind_at and recurrence. `snooze_minutes` and `dismiss_reminder` act on the pending reminder only.
    Completing a repeating task creates its next occurrence (a `task.created` event)."""
    async with runtime.transaction() as outbox:
        updated = await tasks.update(
            outbox, user_id, task_id, body.model_dump(exclude_unset=True), now=runtime.clock.now()
        )
    return _public(runtime, updated.task)


@router.patch(
    "/{task_id}/complete", response_model=TaskPublic, responses=error_responses(404, 429), dependencies=[CountChange]
)
async def toggle_complete(user_id: OwnerId, task_id: DbId, runtime: RuntimeDep) -> TaskPublic:
    """Flip the task between pending and completed."""
    async with runtime.transaction() as outbox:
        current = await tasks.get(outbox.session, user_id, task_id)
        updated = await tasks.update(
            outbox, user_id, task_id, {"completed": not current.completed}, now=runtime.clock.now()
        )
    return TaskPublic.model_validate(updated.task)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(404, 429),
    dependencies=[CountDeletion],
)
async def delete_task(user_id: OwnerId, task_id: DbId, runtime: RuntimeDep) -> Response:
    async with runtime.transaction() as outbox:
        await tasks.delete(outbox, user_id, task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _public(runtime: Runtime, task: Task) -> TaskPublic:
    if task.remind_at is not None:
        runtime.reminders.wake()  # it may be due before the scheduler's next look
    return TaskPublic.model_validate(task)

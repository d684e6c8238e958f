"""The user's tasks. Every change is also pushed to the user's open sockets as a `task.*` event."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from server.api.deps import CountChange, CountDeletion, OwnerId, RuntimeDep, SessionDep
from server.api.openapi import error_responses
from server.db import tasks
from server.fields import DbId, Offset
from server.schemas import TaskCreate, TaskPublic, TasksPublic, TaskStatus, TaskUpdate

router = APIRouter(prefix="/api/{user_id}/tasks", tags=["tasks"], responses=error_responses(401, 403))
# Changes count against the user's tool-call budget (RATE_LIMIT_TOOL_CALLS), deletions a lower one too.


@router.get("", response_model=TasksPublic)
async def list_tasks(
    user_id: OwnerId,
    session: SessionDep,
    status: TaskStatus = "all",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[Offset, Query()] = 0,
) -> TasksPublic:
    """Tasks in creation order, filtered by status, one page at a time."""
    rows, count = await tasks.list_for_user(session, user_id, status=status, limit=limit, offset=offset)
    return TasksPublic(data=[TaskPublic.model_validate(task) for task in rows], count=count)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    responses=error_responses(429),
    dependencies=[CountChange],
)
async def create_task(user_id: OwnerId, body: TaskCreate, runtime: RuntimeDep) -> TaskPublic:
    async with runtime.transaction() as outbox:
        task = await tasks.create(outbox, user_id, title=body.title, description=body.description)
    return TaskPublic.model_validate(task)


@router.get("/{task_id}", response_model=TaskPublic, responses=error_responses(404))
async def get_task(user_id: OwnerId, task_id: DbId, session: SessionDep) -> TaskPublic:
    return TaskPublic.model_validate(await tasks.get(session, user_id, task_id))


@router.patch("/{task_id}", response_model=TaskPublic, responses=error_responses(404, 429), dependencies=[CountChange])
async def update_task(user_id: OwnerId, task_id: DbId, body: TaskUpdate, runtime: RuntimeDep) -> TaskPublic:
    """Change any of title, description and completed; fields left out stay as they are."""
    async with runtime.transaction() as outbox:
        task = await tasks.update(outbox, user_id, task_id, body.model_dump(exclude_unset=True))
    return TaskPublic.model_validate(task)


@router.patch(
    "/{task_id}/complete", response_model=TaskPublic, responses=error_responses(404, 429), dependencies=[CountChange]
)
async def toggle_complete(user_id: OwnerId, task_id: DbId, runtime: RuntimeDep) -> TaskPublic:
    """Flip the task between pending and completed."""
    async with runtime.transaction() as outbox:
        current = await tasks.get(outbox.session, user_id, task_id)
        task = await tasks.update(outbox, user_id, task_id, {"completed": not current.completed})
    return TaskPublic.model_validate(task)


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

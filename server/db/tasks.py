"""Queries on tasks. Every change emits its `task.*` event through the transaction's outbox."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Task, utcnow
from server.db.outbox import Outbox
from server.errors import NotFoundError
from server.schemas import TaskPublic

Status = Literal["all", "pending", "completed"]
UPDATABLE = ("title", "description", "completed")


def _filtered(user_id: int, status: Status) -> Any:
    query = select(Task).where(Task.user_id == user_id)
    if status != "all":
        query = query.where(Task.completed == (status == "completed"))
    return query


async def list_for_user(
    session: AsyncSession, user_id: int, *, status: Status = "all", limit: int = 100, offset: int = 0
) -> tuple[Sequence[Task], int]:
    """A page of tasks in creation order (id breaks ties), and the total matching `status`."""
    query = _filtered(user_id, status)
    rows = await session.exec(query.order_by(col(Task.created_at), col(Task.id)).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return rows.all(), int(total or 0)


async def get(session: AsyncSession, user_id: int, task_id: int) -> Task:
    """The user's task; another user's task is indistinguishable from a missing one."""
    task = await session.get(Task, task_id)
    if task is None or task.user_id != user_id:
        raise NotFoundError("Task not found")
    return task


# Each change takes the user's seq first: every writing transaction locks the user's row before
# any other row, so two of them can never wait on each other (no deadlock).


async def create(outbox: Outbox, user_id: int, *, title: str, description: str | None = None) -> Task:
    seq = await outbox.reserve(user_id)
    task = Task(user_id=user_id, title=title, description=description)
    outbox.session.add(task)
    await outbox.session.flush()
    outbox.record(user_id, {"type": "task.created", "task": TaskPublic.frame(task), "seq": seq})
    return task


async def update(outbox: Outbox, user_id: int, task_id: int, changes: dict[str, Any]) -> Task:
    """Apply `changes` (title, description, completed); emits `task.updated` if anything changed."""
    task = await get(outbox.session, user_id, task_id)
    changes = {field: value for field, value in changes.items() if field in UPDATABLE and getattr(task, field) != value}
    if not changes:
        return task
    seq = await outbox.reserve(user_id)
    for field, value in changes.items():
        setattr(task, field, value)
    task.updated_at = utcnow()
    await outbox.session.flush()
    outbox.record(user_id, {"type": "task.updated", "task": TaskPublic.frame(task), "seq": seq})
    return task


async def delete(outbox: Outbox, user_id: int, task_id: int) -> Task:
    task = await get(outbox.session, user_id, task_id)
    seq = await outbox.reserve(user_id)
    frame = TaskPublic.frame(task)
    await outbox.session.delete(task)
    await outbox.session.flush()
    outbox.record(user_id, {"type": "task.deleted", "task": frame, "seq": seq})
    return task

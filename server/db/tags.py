"""Tags of tasks: the copy on the task row (for reading) and the `task_tags` rows (for filtering), written together."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Task, TaskTag


async def replace(session: AsyncSession, task: Task, tags: Iterable[str]) -> bool:
    """Give the (flushed) task exactly `tags`, already normalised; returns whether they changed."""
    new = sorted(set(tags))
    if new == task.tags:
        return False
    assert task.id is not None, "flush the task before tagging it"
    connection = await session.connection()
    await connection.execute(delete(TaskTag).where(col(TaskTag.task_id) == task.id))
    if new:
        rows = [{"task_id": task.id, "user_id": task.user_id, "tag": tag} for tag in new]
        await connection.execute(insert(TaskTag), rows)
    task.tags = new  # a new list: the JSON column sees the change
    return True


def tagged(user_id: int, tag: str) -> Any:
    """A condition on tasks: those of `user_id` that carry `tag` (a lookup in ix_task_tags_user_tag)."""
    return col(Task.id).in_(select(TaskTag.task_id).where(col(TaskTag.user_id) == user_id, col(TaskTag.tag) == tag))

"""The per-user event log: gap-free seq allocation in the writer's transaction, and reads for replay."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.engine import Sessionmaker
from server.db.models import Event, User
from server.errors import NotFoundError

# Hot-path statements are built once: SQLAlchemy then only binds parameters (Core, no ORM).
_RESERVE = (
    update(User)
    .where(col(User.id) == bindparam("b_user_id"))
    .values(last_seq=col(User.last_seq) + bindparam("b_count"))
    .returning(col(User.last_seq))
)
INSERT_EVENTS = insert(Event)


async def reserve_seqs(session: AsyncSession, user_id: int, count: int = 1) -> int:
    """Take `count` consecutive seqs for `user_id` and return the first.

    The UPDATE locks the user's row until the transaction ends, so concurrent writers for one
    user commit in seq order, and a rolled-back transaction gives its seqs back: no gaps.
    """
    connection = await session.connection()
    result = await connection.execute(_RESERVE, {"b_user_id": user_id, "b_count": count})
    last = result.scalar_one_or_none()
    if last is None:
        raise NotFoundError("User not found")
    return int(last) - count + 1


async def reserve_seqs_for(session: AsyncSession, counts: Mapping[int, int]) -> dict[int, int]:
    """`reserve_seqs` for several users in one statement: user id -> the first of its seqs."""
    if not counts:
        return {}
    statement = (
        update(User)
        .where(col(User.id).in_(list(counts)))
        .values(last_seq=col(User.last_seq) + case(dict(counts), value=col(User.id), else_=0))
        .returning(col(User.id), col(User.last_seq))
    )
    connection = await session.connection()
    rows: Sequence[Any] = (await connection.execute(statement)).all()
    return {int(user_id): int(last) - counts[int(user_id)] + 1 for user_id, last in rows}


async def last_seq(session: AsyncSession, user_id: int) -> int:
    value = await session.scalar(select(col(User.last_seq)).where(col(User.id) == user_id))
    return int(value or 0)


async def read_after(
    session: AsyncSession, user_id: int, after_seq: int, *, limit: int, up_to: int | None = None
) -> Sequence[tuple[int, str]]:
    """Up to `limit` events with after_seq < seq (<= up_to), oldest first, as (seq, frame JSON)."""
    query = select(col(Event.seq), col(Event.frame)).where(col(Event.user_id) == user_id, col(Event.seq) > after_seq)
    if up_to is not None:
        query = query.where(col(Event.seq) <= up_to)
    rows = await session.exec(query.order_by(col(Event.seq)).limit(limit))
    return [(int(seq), frame) for seq, frame in rows.all()]


async def prune(session: AsyncSession, *, before: datetime) -> int:
    """Delete events older than `before`; a resume that needed them gets `resync_required`."""
    result = await session.exec(delete(Event).where(col(Event.created_at) < before))
    return int(result.rowcount or 0)


class EventLog:
    """The log as sockets read it (`server.ws.sequencer.EventLog`), each read in a short session of its own."""

    def __init__(self, reads: Sessionmaker) -> None:
        self._reads = reads

    async def last_seq(self, user_id: int) -> int:
        async with self._reads() as session:
            return await last_seq(session, user_id)

    async def read_after(
        self, user_id: int, after_seq: int, *, limit: int, up_to: int | None = None
    ) -> Sequence[tuple[int, str]]:
        async with self._reads() as session:
            return await read_after(session, user_id, after_seq, limit=limit, up_to=up_to)

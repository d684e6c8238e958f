"""Queries on sessions and their refresh tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import bindparam, delete, insert, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import RefreshToken, UserSession

# Built once: the per-request check and the refresh only bind parameters (Core, no ORM).
_USER_OF = select(col(UserSession.user_id)).where(col(UserSession.id) == bindparam("b_sid"))
_STARTED_AT = select(col(UserSession.created_at)).where(col(UserSession.id) == bindparam("b_sid"))
_ROTATE = (
    update(RefreshToken)
    .where(
        col(RefreshToken.token_hash) == bindparam("b_hash"),
        col(RefreshToken.session_id) == bindparam("b_sid"),
        col(RefreshToken.rotated_at).is_(None),
    )
    .values(rotated_at=bindparam("b_now"))
)
_ROTATED_AT = select(col(RefreshToken.rotated_at)).where(
    col(RefreshToken.token_hash) == bindparam("b_hash"), col(RefreshToken.session_id) == bindparam("b_sid")
)
_TOUCH = (
    update(UserSession)
    .where(col(UserSession.id) == bindparam("b_sid"))
    .values(last_used_at=bindparam("b_now"))
    .returning(col(UserSession.user_id))
)
# Executed on the connection with many parameter sets at once: one round trip (executemany).
_TOUCH_MANY = (
    update(UserSession).where(col(UserSession.id) == bindparam("b_sid")).values(last_used_at=bindparam("b_now"))
)


async def create(
    session: AsyncSession, *, session_id: str, user_id: int, device: str, token_hash: str, now: datetime
) -> None:
    """A new session with its first refresh token."""
    connection = await session.connection()
    await connection.execute(
        insert(UserSession).values(id=session_id, user_id=user_id, device=device, created_at=now, last_used_at=now)
    )
    await connection.execute(insert(RefreshToken).values(token_hash=token_hash, session_id=session_id, issued_at=now))


async def user_of(session: AsyncSession, session_id: str) -> int | None:
    """The user the session belongs to, or None when it does not exist (ended, or never did)."""
    connection = await session.connection()
    value = (await connection.execute(_USER_OF, {"b_sid": session_id})).scalar_one_or_none()
    return None if value is None else int(value)


async def started_at(session: AsyncSession, session_id: str) -> datetime | None:
    """When the session started (its absolute lifetime runs from then), or None when it does not exist."""
    connection = await session.connection()
    value: datetime | None = (await connection.execute(_STARTED_AT, {"b_sid": session_id})).scalar_one_or_none()
    return value


@dataclass(frozen=True, slots=True)
class Rotation:
    outcome: Literal["rotated", "reused", "unknown"]
    user_id: int | None = None
    """For `rotated`: the session's user."""
    rotated_at: datetime | None = None
    """For `reused`: when the presented token was rotated."""


async def rotate(session: AsyncSession, *, session_id: str, old_hash: str, new_hash: str, now: datetime) -> Rotation:
    """Exchange the session's current refresh token `old_hash` for `new_hash`.

    The conditional UPDATE decides, so two concurrent refreshes with one token cannot both
    succeed, on PostgreSQL and SQLite alike: the loser sees the token as already rotated.
    """
    connection = await session.connection()
    params = {"b_hash": old_hash, "b_sid": session_id, "b_now": now}
    if (await connection.execute(_ROTATE, params)).rowcount == 1:
        user_id = (await connection.execute(_TOUCH, {"b_sid": session_id, "b_now": now})).scalar_one()
        await connection.execute(insert(RefreshToken).values(token_hash=new_hash, session_id=session_id, issued_at=now))
        return Rotation("rotated", user_id=int(user_id))
    rotated_at = (await connection.execute(_ROTATED_AT, params)).scalar_one_or_none()
    if rotated_at is None:
        return Rotation("unknown")  # never issued for this session, or the session is gone
    return Rotation("reused", rotated_at=rotated_at)


async def replace_refresh_tokens(session: AsyncSession, session_id: str, *, token_hash: str, now: datetime) -> None:
    """Forget every refresh token of the session and make `token_hash` its current one.

    Forgotten, not rotated: a copy of an old one is refused as unknown, and does not end the session.
    """
    connection = await session.connection()
    await connection.execute(delete(RefreshToken).where(col(RefreshToken.session_id) == session_id))
    await connection.execute(insert(RefreshToken).values(token_hash=token_hash, session_id=session_id, issued_at=now))


async def list_for(session: AsyncSession, user_id: int) -> Sequence[UserSession]:
    """The user's sessions, most recently used first."""
    result = await session.exec(
        select(UserSession)
        .where(col(UserSession.user_id) == user_id)
        .order_by(col(UserSession.last_used_at).desc(), col(UserSession.id))
    )
    return result.all()


async def delete_sessions(session: AsyncSession, user_id: int, session_ids: Iterable[str]) -> list[str]:
    """Delete those of `session_ids` that are `user_id`'s (their refresh tokens go with them); returns them."""
    wanted = list(session_ids)
    if not wanted:
        return []
    connection = await session.connection()
    result = await connection.execute(
        delete(UserSession)
        .where(col(UserSession.user_id) == user_id, col(UserSession.id).in_(wanted))
        .returning(col(UserSession.id))
    )
    return [str(sid) for (sid,) in result.all()]


async def delete_all(session: AsyncSession, user_id: int, *, keep: str | None = None) -> list[str]:
    """Delete every session of `user_id` but `keep`, in one statement (a login racing it is either in or after)."""
    query = delete(UserSession).where(col(UserSession.user_id) == user_id)
    if keep is not None:
        query = query.where(col(UserSession.id) != keep)
    connection = await session.connection()
    result = await connection.execute(query.returning(col(UserSession.id)))
    return [str(sid) for (sid,) in result.all()]


async def touch_many(session: AsyncSession, last_used: dict[str, datetime]) -> None:
    """Record when each session was last used (one statement, many parameter sets)."""
    if not last_used:
        return
    connection = await session.connection()
    await connection.execute(_TOUCH_MANY, [{"b_sid": sid, "b_now": when} for sid, when in last_used.items()])


async def prune(
    session: AsyncSession, *, idle_before: datetime, rotated_before: datetime, started_before: datetime
) -> int:
    """Delete sessions unused since `idle_before` (their refresh tokens expired) or started before
    `started_before` (past their absolute lifetime), and rotated tokens older than `rotated_before`
    (expired too: their reuse can no longer be presented)."""
    connection = await session.connection()
    await connection.execute(
        delete(RefreshToken).where(
            col(RefreshToken.rotated_at).is_not(None), col(RefreshToken.issued_at) < rotated_before
        )
    )
    result = await connection.execute(
        delete(UserSession).where(
            or_(col(UserSession.last_used_at) < idle_before, col(UserSession.created_at) < started_before)
        )
    )
    return int(result.rowcount or 0)

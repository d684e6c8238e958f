"""Queries on users."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import User
from server.errors import ConflictError, NotFoundError


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create(session: AsyncSession, *, email: str, password_hash: str) -> User:
    """Insert a user; `ConflictError` when the email (case-insensitively) is taken."""
    user = User(email=normalise_email(email), password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise ConflictError("Email already registered") from exc
    return user


async def get(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def get_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == normalise_email(email)))
    return result.first()


async def lock(session: AsyncSession, user_id: int) -> str:
    """Lock the user's row until the transaction ends (every writer takes it first); returns the user's time zone.

    Changes that must see the current state of the user's rows (completing a repeating task once
    when two devices complete it together) read it after this. On SQLite the transaction's write
    lock (BEGIN IMMEDIATE) already serialises writers and FOR UPDATE is left out.
    """
    zone = await session.scalar(select(col(User.timezone)).where(col(User.id) == user_id).with_for_update())
    if zone is None:
        raise NotFoundError("User not found")
    return zone


async def set_timezone(session: AsyncSession, user_id: int, timezone: str) -> None:
    await session.exec(update(User).where(col(User.id) == user_id).values(timezone=timezone))


async def set_password_hash(session: AsyncSession, user_id: int, password_hash: str) -> None:
    await session.exec(update(User).where(col(User.id) == user_id).values(password_hash=password_hash))


async def delete(session: AsyncSession, user_id: int) -> None:
    """Delete the user; their tasks, conversations, messages, events and sessions go with them (ON DELETE CASCADE)."""
    await session.exec(sql_delete(User).where(col(User.id) == user_id))

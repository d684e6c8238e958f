"""Queries on users."""

from __future__ import annotations

from sqlalchemy import delete as sql_delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import User
from server.errors import ConflictError


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


async def set_password_hash(session: AsyncSession, user_id: int, password_hash: str) -> None:
    await session.exec(update(User).where(col(User.id) == user_id).values(password_hash=password_hash))


async def delete(session: AsyncSession, user_id: int) -> None:
    """Delete the user; their tasks, conversations, messages, events and sessions go with them (ON DELETE CASCADE)."""
    await session.exec(sql_delete(User).where(col(User.id) == user_id))

"""Queries on messages: idempotency look-ups, the turn's writes, and bounded history for the agent."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Message


async def by_client_msg_id(session: AsyncSession, user_id: int, client_msg_id: str) -> Message | None:
    result = await session.exec(
        select(Message).where(Message.user_id == user_id, Message.client_msg_id == client_msg_id)
    )
    return result.first()


async def turn_request(session: AsyncSession, user_id: int, turn_id: str) -> Message | None:
    """The user message that started `turn_id`, if it is this user's."""
    result = await session.exec(
        select(Message).where(Message.user_id == user_id, Message.turn_id == turn_id, Message.role == "user")
    )
    return result.first()


async def turn_reply(session: AsyncSession, turn_id: str) -> Message | None:
    result = await session.exec(select(Message).where(Message.turn_id == turn_id, Message.role == "assistant"))
    return result.first()


async def turn_tool_calls(session: AsyncSession, turn_id: str) -> Sequence[Message]:
    result = await session.exec(
        select(Message).where(Message.turn_id == turn_id, Message.role == "tool").order_by(col(Message.id))
    )
    return result.all()


async def recent(session: AsyncSession, conversation_id: int, *, limit: int) -> list[Message]:
    """The newest `limit` messages of a conversation, oldest first."""
    result = await session.exec(
        select(Message).where(Message.conversation_id == conversation_id).order_by(col(Message.id).desc()).limit(limit)
    )
    rows = list(result.all())
    rows.reverse()
    return rows

"""Queries on messages: idempotency look-ups, the turn's writes, and bounded history for the agent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, insert as sql_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import Message


class StoredMessage(Protocol):
    """What history needs of a persisted message: an ORM object, a result row or a `HistoryRow` fit."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def status(self) -> str | None: ...

    @property
    def tool_call(self) -> dict[str, Any] | None: ...


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


_INSERT = sql_insert(Message).returning(col(Message.id))
_RECENT = (
    select(col(Message.role), col(Message.content), col(Message.status), col(Message.tool_call))
    .where(col(Message.conversation_id) == bindparam("conversation_id"))
    .order_by(col(Message.id).desc())
    .limit(bindparam("limit"))
)


async def insert(session: AsyncSession, values: dict[str, Any]) -> int:
    """Insert one message with a prebuilt Core statement (no ORM unit of work on the hot path); returns its id."""
    connection = await session.connection()
    result = await connection.execute(_INSERT, values)
    message_id = result.scalar_one()
    assert message_id is not None
    return message_id


async def recent(session: AsyncSession, conversation_id: int, *, limit: int) -> list[StoredMessage]:
    """The newest `limit` messages of a conversation, oldest first: the columns the agent's history needs."""
    connection = await session.connection()
    result = await connection.execute(_RECENT, {"conversation_id": conversation_id, "limit": limit})
    rows = cast(list[StoredMessage], list(result.all()))  # rows read by column name
    rows.reverse()
    return rows

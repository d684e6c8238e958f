"""Queries on conversations and their messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, case, delete as sql_delete, func, insert as sql_insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server import protocol
from server.db.models import Conversation, Message, Turn, User
from server.db.outbox import Outbox
from server.errors import NotFoundError

TITLE_CHARS = 80


def title_from(text: str) -> str:
    """A conversation's title: its first message, on one line, shortened."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


async def list_for_user(
    session: AsyncSession, user_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[Sequence[Conversation], int]:
    """Newest activity first."""
    rows = await session.exec(
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(col(Conversation.updated_at).desc(), col(Conversation.id).desc())
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(select(func.count()).where(Conversation.user_id == user_id))
    return rows.all(), int(total or 0)


async def get(session: AsyncSession, user_id: int, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFoundError("Conversation not found")
    return conversation


async def insert(session: AsyncSession, user_id: int, *, title: str, now: datetime) -> int:
    """A new conversation titled after its first message; returns its id (Core: the turn's hot path)."""
    result = await session.exec(
        sql_insert(Conversation)
        .values(user_id=user_id, title=title_from(title), created_at=now, updated_at=now)
        .returning(col(Conversation.id))
    )
    return int(result.scalar_one())


_TOUCH = (
    update(Conversation)
    .where(col(Conversation.id) == bindparam("b_id"), col(Conversation.user_id) == bindparam("b_user_id"))
    .values(updated_at=bindparam("b_now"))
    .returning(col(Conversation.id))
)


async def touch(session: AsyncSession, user_id: int, conversation_id: int, *, now: datetime) -> bool:
    """Mark new activity; False when the conversation is missing or not the user's."""
    connection = await session.connection()
    result = await connection.execute(_TOUCH, {"b_id": conversation_id, "b_user_id": user_id, "b_now": now})
    return result.scalar_one_or_none() is not None


async def delete(outbox: Outbox, user_id: int, conversation_id: int) -> list[str]:
    """Delete the conversation with its messages; a turn running in it ends (`cancelled`) here.

    Returns the ids of the turns that were running, for the caller to stop once this commits:
    their workers then find them ended and write nothing.
    """
    conversation = await get(outbox.session, user_id, conversation_id)
    await outbox.reserve(user_id, 0)  # the user's row first (see db/tasks.py)
    ended = list(
        (
            await outbox.session.exec(
                sql_delete(Turn).where(col(Turn.conversation_id) == conversation_id).returning(col(Turn.turn_id))
            )
        ).scalars()
    )
    if ended:
        await outbox.session.exec(
            update(User)
            .where(col(User.id) == user_id)
            .values(
                running_turns=case(
                    (col(User.running_turns) >= len(ended), col(User.running_turns) - len(ended)), else_=0
                )
            )
        )
    for turn_id in ended:
        seq = await outbox.reserve(user_id)
        outbox.record(
            user_id,
            protocol.turn_end(
                turn_id, conversation_id, "cancelled", None, seq=seq, reason="The conversation was deleted"
            ),
        )
    seq = await outbox.reserve(user_id)
    await outbox.session.delete(conversation)  # messages go with it (ON DELETE CASCADE)
    await outbox.session.flush()
    outbox.record(user_id, protocol.conversation_deleted(seq, conversation_id))
    return ended


async def list_messages(
    session: AsyncSession,
    user_id: int,
    conversation_id: int,
    *,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> tuple[Sequence[Message], bool]:
    """A page of messages, oldest first, and whether more lie beyond it.

    `after` pages forward from a message id; otherwise the page ends before `before` (or at
    the newest message), which is how a chat view scrolls back through history.
    """
    await get(session, user_id, conversation_id)
    query = select(Message).where(Message.conversation_id == conversation_id)
    if after is not None:
        query = query.where(col(Message.id) > after).order_by(col(Message.id))
    else:
        if before is not None:
            query = query.where(col(Message.id) < before)
        query = query.order_by(col(Message.id).desc())
    rows = list((await session.exec(query.limit(limit + 1))).all())
    has_more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return rows, has_more

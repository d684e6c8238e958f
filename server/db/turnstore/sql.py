"""The turn's storage through SQLAlchemy Core, for any database it speaks: the embedded SQLite default.

The same records and outcomes as `postgres.py`, as several statements in one transaction
instead of one statement (SQLite takes its write lock at BEGIN, so there is nothing to gain
from fusing them, and nothing to retry: no other writer can slip in).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, case, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import col

from server.db.models import Conversation, Event, Message, Turn, User, Worker
from server.db.outbox import PendingEvent
from server.db.turnstore.base import (
    Accepted,
    AcceptItem,
    AcceptStatus,
    Finished,
    FinishItem,
    HistoryRow,
    OrphanTurn,
    ToolItem,
    reply_of,
)
from server.frametext import Hole

_HISTORY = select(
    col(Message.id), col(Message.role), col(Message.content), col(Message.status), col(Message.tool_call)
).order_by(col(Message.id).desc())


def _now() -> datetime:
    return datetime.now(UTC)


class SqlTurnStore:
    def __init__(self, engine: AsyncEngine, *, history_limit: int) -> None:
        self._engine = engine
        self._history_limit = history_limit

    async def close(self) -> None:
        return None  # the engine belongs to the runtime

    async def commit(
        self, accepts: Sequence[AcceptItem], finishes: Sequence[FinishItem], *, worker_id: str, max_concurrent: int
    ) -> tuple[list[Accepted], list[Finished]]:
        async with self._engine.begin() as connection:
            accepted = [await self._accept_one(connection, item, worker_id, max_concurrent) for item in accepts]
            finished = [await self._finish_one(connection, item) for item in finishes]
        return accepted, finished

    async def accept(self, items: Sequence[AcceptItem], *, worker_id: str, max_concurrent: int) -> list[Accepted]:
        accepted, _ = await self.commit(items, (), worker_id=worker_id, max_concurrent=max_concurrent)
        return accepted

    async def _accept_one(
        self, connection: AsyncConnection, item: AcceptItem, worker_id: str, max_concurrent: int
    ) -> Accepted:
        user = (
            await connection.execute(
                select(col(User.last_seq), col(User.running_turns), col(User.timezone))
                .where(col(User.id) == item.user_id)
                .with_for_update()
            )
        ).first()
        if user is None:
            return Accepted(status=AcceptStatus.NOT_FOUND)
        original = (
            await connection.execute(
                select(col(Message.id), col(Message.seq), col(Message.conversation_id), col(Message.turn_id)).where(
                    col(Message.user_id) == item.user_id, col(Message.client_msg_id) == item.client_msg_id
                )
            )
        ).first()
        if original is not None:
            return Accepted(
                status=AcceptStatus.DUPLICATE,
                conversation_id=original.conversation_id,
                message_id=original.id,
                seq=original.seq,
                turn_id=original.turn_id,
            )
        if user.running_turns >= max_concurrent:
            return Accepted(status=AcceptStatus.LIMITED)
        conversation_id = item.conversation_id
        history: list[HistoryRow] = []
        if conversation_id is None:
            created = await connection.execute(
                insert(Conversation)
                .values(user_id=item.user_id, title=item.title, created_at=item.created_at, updated_at=item.created_at)
                .returning(col(Conversation.id))
            )
            conversation_id = _new_id(created)
        else:
            owned = await connection.scalar(
                select(col(Conversation.id)).where(
                    col(Conversation.id) == conversation_id, col(Conversation.user_id) == item.user_id
                )
            )
            if owned is None:
                return Accepted(status=AcceptStatus.NOT_FOUND)
            if await connection.scalar(select(col(Turn.turn_id)).where(col(Turn.conversation_id) == conversation_id)):
                return Accepted(status=AcceptStatus.BUSY)
            history = await self._history(connection, conversation_id, self._history_limit, None)
            await connection.execute(
                update(Conversation).where(col(Conversation.id) == conversation_id).values(updated_at=item.created_at)
            )
        seq = user.last_seq + 1
        message_id = _new_id(
            await connection.execute(
                insert(Message)
                .values(
                    conversation_id=conversation_id,
                    user_id=item.user_id,
                    role="user",
                    content=item.content,
                    client_msg_id=item.client_msg_id,
                    turn_id=item.turn_id,
                    seq=seq,
                    created_at=item.created_at,
                )
                .returning(col(Message.id))
            )
        )
        await connection.execute(
            insert(Turn).values(
                turn_id=item.turn_id,
                user_id=item.user_id,
                conversation_id=conversation_id,
                client_msg_id=item.client_msg_id,
                message_id=message_id,
                seq=seq,
                worker_id=worker_id,
                started_at=item.created_at,
            )
        )
        values: dict[Hole, int] = {Hole.SEQ: seq, Hole.CONVERSATION_ID: conversation_id, Hole.MESSAGE_ID: message_id}
        message_frame = item.message_frame.fill(values)
        start_frame = item.start_frame.fill({**values, Hole.SEQ: seq + 1})
        await self._log(
            connection,
            item.user_id,
            item.created_at,
            (seq, "message", message_frame),
            (seq + 1, "turn.start", start_frame),
        )
        await connection.execute(
            update(User)
            .where(col(User.id) == item.user_id)
            .values(last_seq=col(User.last_seq) + 2, running_turns=col(User.running_turns) + 1)
        )
        return Accepted(
            status=AcceptStatus.ACCEPTED,
            conversation_id=conversation_id,
            message_id=message_id,
            seq=seq,
            turn_id=item.turn_id,
            events=[PendingEvent(message_frame, seq), PendingEvent(start_frame, seq + 1)],
            history=history,
            timezone=user.timezone,
        )

    async def finish(self, items: Sequence[FinishItem]) -> list[Finished]:
        _, finished = await self.commit((), items, worker_id="", max_concurrent=0)
        return finished

    async def _finish_one(self, connection: AsyncConnection, item: FinishItem) -> Finished:
        last_seq = await connection.scalar(
            select(col(User.last_seq)).where(col(User.id) == item.user_id).with_for_update()
        )
        if last_seq is None:
            return Finished(ended=False)
        conversation_id = (
            await connection.execute(
                delete(Turn)
                .where(col(Turn.turn_id) == item.turn_id, col(Turn.user_id) == item.user_id)
                .returning(col(Turn.conversation_id))
            )
        ).scalar_one_or_none()
        if conversation_id is None:
            return Finished(ended=False)
        seq = last_seq + 1
        message_id = _new_id(
            await connection.execute(
                insert(Message)
                .values(
                    conversation_id=conversation_id,
                    user_id=item.user_id,
                    role="assistant",
                    content=item.content,
                    status=item.status,
                    turn_id=item.turn_id,
                    seq=seq,
                    created_at=item.created_at,
                )
                .returning(col(Message.id))
            )
        )
        await connection.execute(
            update(Conversation).where(col(Conversation.id) == conversation_id).values(updated_at=item.created_at)
        )
        values: dict[Hole, int] = {Hole.SEQ: seq, Hole.CONVERSATION_ID: conversation_id, Hole.MESSAGE_ID: message_id}
        message_frame = item.message_frame.fill(values)
        end_frame = item.end_frame.fill({**values, Hole.SEQ: seq + 1})
        await self._log(
            connection, item.user_id, item.created_at, (seq, "message", message_frame), (seq + 1, "turn.end", end_frame)
        )
        await connection.execute(
            update(User)
            .where(col(User.id) == item.user_id)
            .values(
                last_seq=col(User.last_seq) + 2,
                running_turns=case((col(User.running_turns) > 0, col(User.running_turns) - 1), else_=0),
            )
        )
        return Finished(
            ended=True,
            user_id=item.user_id,
            message_id=message_id,
            seq=seq,
            events=[PendingEvent(message_frame, seq), PendingEvent(end_frame, seq + 1)],
        )

    async def record_tool(self, item: ToolItem) -> PendingEvent | None:
        async with self._engine.begin() as connection:
            last_seq = await connection.scalar(
                select(col(User.last_seq)).where(col(User.id) == item.user_id).with_for_update()
            )
            conversation_id = await connection.scalar(
                select(col(Turn.conversation_id)).where(
                    col(Turn.turn_id) == item.turn_id, col(Turn.user_id) == item.user_id
                )
            )
            if last_seq is None or conversation_id is None:
                return None
            seq = last_seq + 1
            if item.content is not None:
                await connection.execute(
                    insert(Message).values(
                        conversation_id=conversation_id,
                        user_id=item.user_id,
                        role="tool",
                        content=item.content,
                        turn_id=item.turn_id,
                        tool_call=item.tool_call,
                        seq=seq,
                        created_at=item.created_at,
                    )
                )
            frame = item.frame.fill({Hole.SEQ: seq})
            await self._log(connection, item.user_id, item.created_at, (seq, item.kind, frame))
            await connection.execute(update(User).where(col(User.id) == item.user_id).values(last_seq=seq))
        return PendingEvent(frame, seq)

    async def history(self, conversation_id: int, *, limit: int, before_id: int | None = None) -> list[HistoryRow]:
        async with self._engine.connect() as connection:
            return await self._history(connection, conversation_id, limit, before_id)

    @staticmethod
    async def _history(
        connection: AsyncConnection, conversation_id: int, limit: int, before_id: int | None
    ) -> list[HistoryRow]:
        query = _HISTORY.where(col(Message.conversation_id) == conversation_id)
        if before_id is not None:
            query = query.where(col(Message.id) < before_id)
        rows = (await connection.execute(query.limit(limit))).all()
        return [HistoryRow(row.role, row.content, row.status, row.tool_call) for row in reversed(rows)]

    @staticmethod
    async def _log(connection: AsyncConnection, user_id: int, at: datetime, *events: tuple[int, str, str]) -> None:
        await connection.execute(
            insert(Event),
            [
                {"user_id": user_id, "seq": seq, "type": kind, "frame": frame, "created_at": at}
                for seq, kind, frame in events
            ],
        )

    async def turn_reply(self, turn_id: str) -> tuple[str, str, list[dict[str, Any]]] | None:
        query = (
            select(col(Message.role), col(Message.content), col(Message.status), col(Message.tool_call))
            .where(col(Message.turn_id) == turn_id, col(Message.role).in_(("assistant", "tool")))
            .order_by(col(Message.id))
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return reply_of([(row[0], row[1], row[2], row[3]) for row in rows])

    async def turn_exists(self, user_id: int, turn_id: str) -> bool:
        query = select(col(Message.id)).where(
            col(Message.turn_id) == turn_id, col(Message.user_id) == user_id, col(Message.role) == "user"
        )
        async with self._engine.connect() as connection:
            return (await connection.scalar(query)) is not None

    async def accepted_before(self, user_id: int, client_msg_id: str) -> bool:
        query = select(col(Message.id)).where(
            col(Message.user_id) == user_id, col(Message.client_msg_id) == client_msg_id
        )
        async with self._engine.connect() as connection:
            return (await connection.scalar(query)) is not None

    async def register_worker(self, worker_id: str) -> None:
        now = _now()
        async with self._engine.begin() as connection:
            await connection.execute(delete(Worker).where(col(Worker.id) == worker_id))
            await connection.execute(insert(Worker).values(id=worker_id, started_at=now, heartbeat_at=now))

    async def heartbeat(self, worker_id: str) -> bool:
        async with self._engine.begin() as connection:
            beat = await connection.execute(
                update(Worker).where(col(Worker.id) == worker_id).values(heartbeat_at=_now())
            )
        return bool(beat.rowcount)

    async def checkpoint(self, worker_id: str, partials: Mapping[str, str]) -> None:
        if not partials:
            return
        async with self._engine.begin() as connection:
            for turn_id, text in partials.items():
                await connection.execute(
                    update(Turn)
                    .where(col(Turn.turn_id) == turn_id, col(Turn.worker_id) == worker_id)
                    .values(partial_reply=text)
                )

    async def unregister_worker(self, worker_id: str) -> None:
        async with self._engine.begin() as connection:
            await connection.execute(delete(Worker).where(col(Worker.id) == worker_id))

    async def orphans(self, worker_id: str, *, lease_seconds: float, limit: int) -> list[OrphanTurn]:
        query = (
            select(
                col(Turn.turn_id),
                col(Turn.user_id),
                col(Turn.conversation_id),
                col(Turn.worker_id),
                col(Turn.partial_reply),
                col(Worker.heartbeat_at),
            )
            .outerjoin(Worker, col(Worker.id) == col(Turn.worker_id))
            .where(col(Turn.worker_id) != worker_id)
            .order_by(col(Turn.started_at))
            .limit(limit)
        )
        if lease_seconds >= 0:
            cutoff = _now() - timedelta(seconds=lease_seconds)
            query = query.where((col(Worker.id).is_(None)) | (col(Worker.heartbeat_at) < cutoff))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [OrphanTurn(row[0], row[1], row[2], row[3], row[4] or "", row[5]) for row in rows]

    async def forget_dead_workers(self, *, lease_seconds: float) -> None:
        cutoff = _now() - timedelta(seconds=lease_seconds)
        async with self._engine.begin() as connection:
            await connection.execute(
                delete(Worker).where(
                    col(Worker.heartbeat_at) < cutoff,
                    ~select(Turn).where(col(Turn.worker_id) == col(Worker.id)).exists(),
                )
            )


def _new_id(result: CursorResult[Any]) -> int:
    """The id an `INSERT ... RETURNING id` made."""
    value = result.scalar_one()
    assert isinstance(value, int)
    return value

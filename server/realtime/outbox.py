"""Events written in the same transaction as the change they describe, published after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from server.db import events
from server.db.engine import Sessionmaker
from server.db.models import utcnow
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub


class Outbox:
    """Collects a transaction's events: each gets its user's next seq and a row in the event log."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.pending: dict[int, list[Envelope]] = {}
        self._rows: list[dict[str, Any]] = []

    async def reserve(self, user_id: int, count: int = 1) -> int:
        """The first of `count` seqs; for rows that must know their seq before insert."""
        return await events.reserve_seqs(self.session, user_id, count)

    def record(self, user_id: int, frame: dict[str, Any]) -> Envelope:
        """Log `frame`, whose `seq` came from `reserve`, and queue it for publishing."""
        envelope = Envelope.event(frame)
        assert envelope.seq is not None, "record() needs a frame with a reserved seq"
        self._rows.append(
            {
                "user_id": user_id,
                "seq": envelope.seq,
                "type": frame["type"],
                "frame": envelope.text,
                "created_at": utcnow(),
            }
        )
        self.pending.setdefault(user_id, []).append(envelope)
        return envelope

    async def write(self) -> None:
        """Insert the recorded events, all in one statement; `transaction` calls it before commit."""
        rows, self._rows = self._rows, []
        if rows:
            connection = await self.session.connection()
            await connection.execute(events.INSERT_EVENTS, rows)

    def prepend(self, user_id: int, envelopes: list[Envelope]) -> None:
        """Publish `envelopes` (ephemeral ones, e.g. the last delta) first, in the same batch."""
        if envelopes:
            self.pending[user_id] = [*envelopes, *self.pending.get(user_id, [])]

    async def publish(self, hub: Hub) -> None:
        """Publish what was recorded; call only after the transaction committed."""
        pending, self.pending = self.pending, {}
        for user_id, envelopes in pending.items():
            await hub.publish(user_id, envelopes)

    async def emit(self, user_id: int, frame: dict[str, Any]) -> int:
        """Give `frame` the next seq, log it and queue it; returns the seq."""
        frame["seq"] = await self.reserve(user_id)
        self.record(user_id, frame)
        return int(frame["seq"])


@asynccontextmanager
async def transaction(db: Sessionmaker, hub: Hub, *, publish: bool = True) -> AsyncIterator[Outbox]:
    """One database transaction; its events are published only once it has committed.

    With `publish=False` the caller publishes (`outbox.publish(hub)`) when it is ready, e.g.
    after sending an `ack` that must come first.
    """
    async with db() as session, session.begin():
        outbox = Outbox(session)
        yield outbox
        await outbox.write()
    if publish:
        await outbox.publish(hub)

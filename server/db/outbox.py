"""Events written in the same transaction as the change they describe, handed on for publishing after commit.

The outbox knows nothing of how events travel: `transaction` takes the publisher (the hub's
`publish_pending`) as an argument, so the storage layer never imports the real-time one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from server import protocol
from server.db import events
from server.db.engine import Sessionmaker
from server.db.models import utcnow


class PendingEvent(NamedTuple):
    """A frame for the user's sockets: its JSON text, and its seq if it is in the event log."""

    text: str
    seq: int | None = None


Pending = Mapping[int, Sequence[PendingEvent]]
Publisher = Callable[[Pending], Awaitable[None]]
"""Publishes each user's events, in order; called only after their transaction committed."""


class Outbox:
    """Collects a transaction's events: each gets its user's next seq and a row in the event log."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.pending: dict[int, list[PendingEvent]] = {}
        self._rows: list[dict[str, Any]] = []

    async def reserve(self, user_id: int, count: int = 1) -> int:
        """The first of `count` seqs; for rows that must know their seq before insert."""
        return await events.reserve_seqs(self.session, user_id, count)

    def record(self, user_id: int, frame: protocol.Event) -> PendingEvent:
        """Log `frame`, whose `seq` came from `reserve`, and queue it for publishing."""
        seq = frame["seq"]
        assert seq > 0, "record() needs a frame with a reserved seq"
        event = PendingEvent(orjson.dumps(frame).decode(), seq)
        self._rows.append(
            {"user_id": user_id, "seq": seq, "type": frame["type"], "frame": event.text, "created_at": utcnow()}
        )
        self.pending.setdefault(user_id, []).append(event)
        return event

    async def write(self) -> None:
        """Insert the recorded events, all in one statement; `transaction` calls it before commit."""
        rows, self._rows = self._rows, []
        if rows:
            connection = await self.session.connection()
            await connection.execute(events.INSERT_EVENTS, rows)

    def prepend(self, user_id: int, frames: Sequence[PendingEvent]) -> None:
        """Publish `frames` (ephemeral ones, e.g. the last delta) first, in the same batch."""
        if frames:
            self.pending[user_id] = [*frames, *self.pending.get(user_id, [])]

    async def publish(self, publisher: Publisher) -> None:
        """Hand on what was recorded; call only after the transaction committed."""
        pending, self.pending = self.pending, {}
        if pending:
            await publisher(pending)


@asynccontextmanager
async def transaction(db: Sessionmaker, publisher: Publisher | None) -> AsyncIterator[Outbox]:
    """One database transaction; its events are published only once it has committed.

    With `publisher=None` the caller publishes (`outbox.publish(...)`) when it is ready, e.g.
    after sending an `ack` that must come first.
    """
    async with db() as session, session.begin():
        outbox = Outbox(session)
        yield outbox
        await outbox.write()
    if publisher is not None:
        await outbox.publish(publisher)

"""Pruning the event log deletes only what is older than the window."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col, select

from server.db.models import Event, utcnow
from server.db.retention import prune_once
from tests.support.live import LiveServer
from tests.support.users import AppUser


async def test_prune_deletes_only_old_events(server: LiveServer, user: AppUser, client: httpx.AsyncClient) -> None:
    for title in ("old", "new"):
        await client.post(user.url("/tasks"), json={"title": title}, headers=user.headers)
    db = server.runtime.db
    async with db() as session, session.begin():
        await session.exec(
            update(Event)
            .where(col(Event.user_id) == user.id, col(Event.seq) == 1)
            .values(created_at=utcnow() - timedelta(days=10))
        )
    assert await prune_once(db, retention=timedelta(days=3)) >= 1
    async with db() as session:
        left = (await session.exec(select(Event.seq).where(Event.user_id == user.id))).all()
    assert list(left) == [2]

"""Conversations and message history over REST: ordering, paging both ways, deletion."""

from __future__ import annotations

from datetime import timedelta

import httpx

from server.db import conversations
from server.db.models import Message, utcnow
from tests.support.live import LiveServer
from tests.support.users import AppUser


async def seed(server: LiveServer, user: AppUser, title: str, messages: int) -> tuple[int, list[int]]:
    async with server.runtime.db() as session, session.begin():
        conversation_id = await conversations.insert(session, user.id, title=title, now=utcnow())
        rows = [
            Message(
                conversation_id=conversation_id, user_id=user.id, role=("user", "assistant")[n % 2], content=f"m{n}"
            )
            for n in range(messages)
        ]
        session.add_all(rows)
        await session.flush()
    return conversation_id, [row.id for row in rows if row.id is not None]


async def test_conversations_are_listed_newest_activity_first(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser
) -> None:
    first, _ = await seed(server, user, "first chat", 1)
    second, _ = await seed(server, user, "second chat " + "x" * 200, 1)
    async with server.runtime.db() as session, session.begin():
        conversation = await conversations.get(session, user.id, first)
        conversation.updated_at = utcnow() + timedelta(seconds=5)  # the first chat had newer activity
    response = await client.get(user.url("/conversations"), headers=user.headers)
    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["data"]] == [first, second] and body["count"] == 2
    assert len(body["data"][1]["title"]) <= 80  # long first messages make short titles
    page = await client.get(user.url("/conversations"), params={"limit": 1, "offset": 1}, headers=user.headers)
    assert [c["id"] for c in page.json()["data"]] == [second]


async def test_messages_page_backwards_and_forwards(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser
) -> None:
    conversation_id, ids = await seed(server, user, "long chat", 7)
    url = user.url(f"/conversations/{conversation_id}/messages")

    async def page(**params: int) -> tuple[list[int], bool]:
        response = await client.get(url, params=params, headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        return [m["id"] for m in body["data"]], body["has_more"]

    assert await page(limit=3) == (ids[4:], True)  # newest page, oldest first
    assert await page(limit=3, before=ids[4]) == (ids[1:4], True)
    assert await page(limit=3, before=ids[1]) == (ids[:1], False)
    assert await page(limit=3, after=0) == (ids[:3], True)
    assert await page(limit=3, after=ids[2]) == (ids[3:6], True)
    assert await page(limit=3, after=ids[5]) == (ids[6:], False)

    first = (await client.get(url, params={"limit": 1, "after": 0}, headers=user.headers)).json()["data"][0]
    assert first["role"] == "user" and first["content"] == "m0" and first["conversation_id"] == conversation_id
    both = await client.get(url, params={"before": ids[3], "after": ids[1]}, headers=user.headers)
    assert both.status_code == 422 and both.json()["code"] == "invalid"


async def test_delete_removes_conversation_and_messages(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser
) -> None:
    conversation_id, _ = await seed(server, user, "to delete", 3)
    response = await client.delete(user.url(f"/conversations/{conversation_id}"), headers=user.headers)
    assert response.status_code == 204
    assert (await client.get(user.url("/conversations"), headers=user.headers)).json()["count"] == 0
    gone = await client.get(user.url(f"/conversations/{conversation_id}/messages"), headers=user.headers)
    assert gone.status_code == 404 and gone.json() == {"detail": "Conversation not found", "code": "not_found"}
    async with server.runtime.db() as session:
        from sqlmodel import select

        left = (await session.exec(select(Message).where(Message.conversation_id == conversation_id))).all()
    assert left == []

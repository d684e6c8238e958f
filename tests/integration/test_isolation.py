"""User B can never see or change anything of user A's: 403 for A's URLs, 404 for A's ids."""

from __future__ import annotations

import httpx
import pytest

from server.db import conversations
from server.db.models import Message, utcnow
from tests.support.live import LiveServer
from tests.support.users import AppUser, MakeUser


@pytest.fixture
async def owner_with_data(
    client: httpx.AsyncClient, server: LiveServer, make_user: MakeUser
) -> tuple[AppUser, int, int]:
    owner = await make_user()
    task = (await client.post(owner.url("/tasks"), json={"title": "secret"}, headers=owner.headers)).json()
    async with server.runtime.db() as session, session.begin():
        conversation_id = await conversations.insert(session, owner.id, title="private chat", now=utcnow())
        session.add(Message(conversation_id=conversation_id, user_id=owner.id, role="user", content="private"))
    return owner, task["id"], conversation_id


async def test_other_users_urls_are_forbidden(
    client: httpx.AsyncClient, make_user: MakeUser, owner_with_data: tuple[AppUser, int, int]
) -> None:
    owner, task_id, conversation_id = owner_with_data
    intruder = await make_user()
    base = f"/api/{owner.id}"
    calls = [
        ("GET", f"{base}/tasks", None),
        ("POST", f"{base}/tasks", {"title": "planted"}),
        ("GET", f"{base}/tasks/{task_id}", None),
        ("PATCH", f"{base}/tasks/{task_id}", {"title": "changed"}),
        ("PATCH", f"{base}/tasks/{task_id}/complete", None),
        ("DELETE", f"{base}/tasks/{task_id}", None),
        ("GET", f"{base}/conversations", None),
        ("GET", f"{base}/conversations/{conversation_id}/messages", None),
        ("DELETE", f"{base}/conversations/{conversation_id}", None),
    ]
    for method, url, body in calls:
        response = await client.request(method, url, json=body, headers=intruder.headers)
        assert response.status_code == 403, (method, url)
        assert "secret" not in response.text and "private" not in response.text


async def test_other_users_ids_are_not_found(
    client: httpx.AsyncClient, make_user: MakeUser, owner_with_data: tuple[AppUser, int, int]
) -> None:
    owner, task_id, conversation_id = owner_with_data
    intruder = await make_user()
    calls = [
        ("GET", f"/tasks/{task_id}", None),
        ("PATCH", f"/tasks/{task_id}", {"title": "changed"}),
        ("PATCH", f"/tasks/{task_id}/complete", None),
        ("DELETE", f"/tasks/{task_id}", None),
        ("GET", f"/conversations/{conversation_id}/messages", None),
        ("DELETE", f"/conversations/{conversation_id}", None),
    ]
    missing_task = await client.get(intruder.url("/tasks/999999999"), headers=intruder.headers)
    for method, path, body in calls:
        response = await client.request(method, intruder.url(path), json=body, headers=intruder.headers)
        assert response.status_code == 404, (method, path)
        assert "secret" not in response.text and "private" not in response.text
    # Someone else's id answers exactly like an id that does not exist.
    foreign_task = await client.get(intruder.url(f"/tasks/{task_id}"), headers=intruder.headers)
    assert foreign_task.json() == missing_task.json()

    # And the owner's data is untouched.
    task = await client.get(owner.url(f"/tasks/{task_id}"), headers=owner.headers)
    assert task.json()["title"] == "secret" and task.json()["completed"] is False
    listed = await client.get(owner.url("/conversations"), headers=owner.headers)
    assert [c["id"] for c in listed.json()["data"]] == [conversation_id]
    assert (await client.get(intruder.url("/tasks"), headers=intruder.headers)).json() == {"data": [], "count": 0}

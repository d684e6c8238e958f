"""Tasks over REST on both stacks: CRUD, filters, pagination, toggling and validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.users import AppUser


async def create(client: httpx.AsyncClient, user: AppUser, title: str, **extra: object) -> dict[str, object]:
    response = await client.post(user.url("/tasks"), json={"title": title, **extra}, headers=user.headers)
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_crud_round_trip(client: httpx.AsyncClient, user: AppUser) -> None:
    task = await create(client, user, "  Buy groceries  ", description="milk, eggs")
    assert task["title"] == "Buy groceries"  # surrounding whitespace is trimmed
    assert task["description"] == "milk, eggs" and task["completed"] is False
    assert str(task["created_at"]).endswith(("Z", "+00:00"))

    url = user.url(f"/tasks/{task['id']}")
    assert (await client.get(url, headers=user.headers)).json() == task

    patched = await client.patch(url, json={"title": "Buy bread"}, headers=user.headers)
    assert patched.status_code == 200
    assert patched.json()["title"] == "Buy bread" and patched.json()["description"] == "milk, eggs"
    assert patched.json()["updated_at"] >= str(task["updated_at"])

    toggled = await client.patch(f"{url}/complete", headers=user.headers)
    assert toggled.json()["completed"] is True
    toggled_back = await client.patch(f"{url}/complete", headers=user.headers)
    assert toggled_back.json()["completed"] is False

    assert (await client.delete(url, headers=user.headers)).status_code == 204
    assert (await client.get(url, headers=user.headers)).status_code == 404
    assert (await client.delete(url, headers=user.headers)).status_code == 404


async def test_list_filters_by_status_and_pages_in_stable_order(client: httpx.AsyncClient, user: AppUser) -> None:
    ids = [int(str((await create(client, user, f"task {n}"))["id"])) for n in range(7)]
    for task_id in ids[:3]:
        await client.patch(user.url(f"/tasks/{task_id}"), json={"completed": True}, headers=user.headers)

    async def listed(**params: str | int) -> dict[str, Any]:
        response = await client.get(user.url("/tasks"), params=params, headers=user.headers)
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    everything = await listed()
    assert [t["id"] for t in everything["data"]] == ids and everything["count"] == 7
    completed = await listed(status="completed")
    assert [t["id"] for t in completed["data"]] == ids[:3]
    pending = await listed(status="pending")
    assert [t["id"] for t in pending["data"]] == ids[3:] and pending["count"] == 4

    pages = [await listed(limit=3, offset=offset) for offset in (0, 3, 6)]
    assert [t["id"] for page in pages for t in page["data"]] == ids
    assert all(page["count"] == 7 for page in pages)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": "ok", "description": "d" * 1001},
        {"title": 5},
    ],
    ids=["missing", "empty", "blank", "long-title", "long-description", "not-a-string"],
)
async def test_create_rejects_invalid_tasks(client: httpx.AsyncClient, user: AppUser, body: dict[str, object]) -> None:
    response = await client.post(user.url("/tasks"), json=body, headers=user.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("status", ["done", "ALL", ""])
async def test_list_rejects_unknown_status(client: httpx.AsyncClient, user: AppUser, status: str) -> None:
    response = await client.get(user.url("/tasks"), params={"status": status}, headers=user.headers)
    assert response.status_code == 422


async def test_patch_rejects_unknown_fields(client: httpx.AsyncClient, user: AppUser) -> None:
    task = await create(client, user, "t")
    response = await client.patch(user.url(f"/tasks/{task['id']}"), json={"user_id": 1}, headers=user.headers)
    assert response.status_code == 422


async def test_tasks_need_a_token(client: httpx.AsyncClient, user: AppUser) -> None:
    response = await client.get(user.url("/tasks"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_ids_of_deleted_tasks_are_never_reused(client: httpx.AsyncClient, user: AppUser) -> None:
    first = await create(client, user, "short-lived")
    await client.delete(user.url(f"/tasks/{first['id']}"), headers=user.headers)
    second = await create(client, user, "successor")
    assert int(str(second["id"])) > int(str(first["id"]))  # "task 7" never names two different tasks

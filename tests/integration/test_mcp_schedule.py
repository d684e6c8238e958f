"""The tools' new arguments over MCP on both stacks: schemas, priorities, tags, due times in the user's zone,
filters, search and sorting, the errors as results, and the events the changes publish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.live import LiveServer
from tests.support.mcpclient import open_mcp, value
from tests.support.users import AppUser
from tests.support.wsclient import WSClient


def soon(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def test_the_schemas_describe_the_new_arguments(server: LiveServer, user: AppUser) -> None:
    async with open_mcp(server.base_url, user.token) as mcp:
        tools = {tool.name: tool.input_schema for tool in (await mcp.list_tools()).tools}
    add = tools["add_task"]["properties"]
    assert {"enum": ["low", "normal", "high"], "type": "string"} in add["priority"]["anyOf"]
    assert {"format": "date-time", "type": "string"} in add["due_at"]["anyOf"]
    assert {"format": "date-time", "type": "string"} in add["remind_at"]["anyOf"]
    assert any(option.get("maxItems") == 10 for option in add["tags"]["anyOf"])
    assert "FREQ=WEEKLY" in add["recurrence"]["description"]
    listing = tools["list_tasks"]["properties"]
    assert set(listing) == {
        *("status", "priority", "tag", "due_before", "due_after", "overdue"),
        *("query", "sort", "order", "limit"),
    }
    assert listing["limit"]["maximum"] == 200
    update = tools["update_task"]["properties"]
    assert {"tags", "add_tags", "remove_tags", "due_at", "remind_at", "recurrence"} <= set(update)
    assert {"maximum": 10080, "minimum": 1, "type": "integer"} in update["snooze_minutes"]["anyOf"]
    assert tools["update_task"]["required"] == ["task_id"] and tools["add_task"]["required"] == ["title"]


async def test_adding_listing_and_changing_with_the_new_arguments(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    await client.patch("/api/auth/me", json={"timezone": "America/New_York"}, headers=user.headers)
    async with open_mcp(server.base_url, user.token) as mcp:

        async def call(name: str, **arguments: Any) -> Any:
            return value(await mcp.call_tool(name, arguments))

        report = await call(
            "add_task",
            title="Send the quarterly report",
            priority="high",
            tags=["Work"],
            due_at="2030-03-01T17:00:00Z",
            remind_at="2030-03-01T16:30:00Z",
        )
        assert report == {"task_id": report["task_id"], "status": "created", "title": "Send the quarterly report"}
        milk = await call("add_task", title="Buy milk", tags=["home"], due_at=soon(-3))
        await call("add_task", title="Read a book", priority="low")

        [item] = await call("list_tasks", tag="work")
        assert item == {
            "id": report["task_id"],
            "title": "Send the quarterly report",
            "description": None,
            "completed": False,
            "priority": "high",
            "tags": ["work"],
            "due_at": "2030-03-01T12:00:00-05:00",  # the user's zone, with its offset
            "remind_at": "2030-03-01T11:30:00-05:00",
            "recurrence": None,
            "overdue": False,
        }

        async def titles(**arguments: Any) -> list[str]:
            return [t["title"] for t in await call("list_tasks", **arguments)]

        assert await titles(overdue=True) == ["Buy milk"]
        assert await titles(priority="low") == ["Read a book"]
        assert await titles(query="report") == ["Send the quarterly report"]
        assert await titles(due_before="2030-01-01T00:00:00Z") == ["Buy milk"]
        assert await titles(due_after="2030-01-01T00:00:00Z") == ["Send the quarterly report"]
        assert await titles(sort="priority") == ["Send the quarterly report", "Buy milk", "Read a book"]
        assert await titles(sort="title", order="desc", limit=2) == ["Send the quarterly report", "Read a book"]
        assert await titles(sort="due") == ["Buy milk", "Send the quarterly report", "Read a book"]

        changed = await call("update_task", task_id=milk["task_id"], add_tags=["Errands"], priority="high")
        assert changed == {"task_id": milk["task_id"], "status": "updated", "title": "Buy milk"}
        assert (await call("list_tasks", tag="errands"))[0]["tags"] == ["errands", "home"]
        await call("update_task", task_id=milk["task_id"], remove_tags=["home"], due_at=None)
        [milk_now] = await call("list_tasks", tag="errands")
        assert milk_now["tags"] == ["errands"] and milk_now["due_at"] is None and milk_now["overdue"] is False
        repeating = await call("update_task", task_id=milk["task_id"], due_at=soon(24), recurrence="freq=weekly")
        assert repeating["status"] == "updated"
        assert (await call("list_tasks", tag="errands"))[0]["recurrence"] == "FREQ=WEEKLY"


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("add_task", {"title": "t", "due_at": "2030-01-01T09:00:00"}, "due_at"),
        ("add_task", {"title": "t", "due_at": "next friday"}, "due_at"),
        ("add_task", {"title": "t", "remind_at": "2001-01-01T09:00:00Z"}, "in the past"),
        ("add_task", {"title": "t", "recurrence": "FREQ=WEEKLY"}, "needs a due_at"),
        ("add_task", {"title": "t", "due_at": "2030-01-01T09:00:00Z", "recurrence": "FREQ=SECONDLY"}, "FREQ"),
        ("add_task", {"title": "t", "tags": [str(n) for n in range(11)]}, "at most 10"),
        ("add_task", {"title": "t", "priority": "urgent"}, "priority"),
        ("list_tasks", {"sort": "importance"}, "sort"),
        ("list_tasks", {"limit": 201}, "limit"),
        ("list_tasks", {"query": ""}, "query"),
        ("update_task", {"task_id": 1, "snooze_minutes": 0}, "snooze_minutes"),
    ],
    ids=[
        "naive",
        "prose",
        "past",
        "rule-no-due",
        "freq",
        "tags",
        "priority",
        "sort",
        "limit",
        "query",
        "snooze",
    ],
)
async def test_bad_arguments_are_invalid_arguments_results(
    server: LiveServer, user: AppUser, name: str, arguments: dict[str, Any], says: str
) -> None:
    async with open_mcp(server.base_url, user.token) as mcp:
        result = await mcp.call_tool(name, arguments)
        assert result.is_error
        error = value(result)
        assert error["error"] == "invalid_arguments" and says in error["message"]
        assert value(await mcp.call_tool("list_tasks", {})) == []


async def test_add_tags_past_ten_is_refused_and_changes_nothing(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    async with open_mcp(server.base_url, user.token) as mcp:
        added = value(await mcp.call_tool("add_task", {"title": "Tagged", "tags": [f"t{n}" for n in range(9)]}))
        refused = value(
            await mcp.call_tool(
                "update_task", {"task_id": added["task_id"], "title": "Renamed", "add_tags": ["x", "y"]}
            )
        )
        assert refused["error"] == "invalid_arguments" and "at most 10 tags" in refused["message"]
    [task] = (await client.get(user.url("/tasks"), headers=user.headers)).json()["data"]
    assert task["title"] == "Tagged" and len(task["tags"]) == 9  # the title did not change either


async def test_tool_changes_publish_events_with_the_new_fields(server: LiveServer, user: AppUser) -> None:
    async with open_mcp(server.base_url, user.token) as mcp, await WSClient.open(server.ws_url, user.token) as ws:
        value(await mcp.call_tool("add_task", {"title": "Plan", "priority": "high", "tags": ["trip"]}))
        created = await ws.receive("task.created")
        assert created["task"]["priority"] == "high" and created["task"]["tags"] == ["trip"]
        value(await mcp.call_tool("update_task", {"task_id": created["task"]["id"], "due_at": soon(10)}))
        updated = await ws.receive("task.updated")
        assert updated["task"]["due_at"] is not None and updated["task"]["due_at"].endswith("Z")

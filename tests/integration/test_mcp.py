"""`/mcp` through the official MCP client: the chat tools, as the token's user only, with live events and 401s."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult

from server.assistant.tools import TOOLS, tool_specs
from tests.support.live import LiveServer
from tests.support.timing import TIMEOUT
from tests.support.tokens import access_token
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

Connect = Callable[[str | None], AbstractAsyncContextManager[Client]]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


@pytest.fixture(params=["legacy", "auto"], ids=["handshake", "negotiated"])
def connect(request: pytest.FixtureRequest, server: LiveServer) -> Connect:
    """Open the official client on `/mcp` with `token` as bearer: the initialize handshake, or the SDK's newest era."""

    @asynccontextmanager
    async def open_client(token: str | None) -> AsyncIterator[Client]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as http,
            Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http), mode=request.param) as client,
        ):
            yield client

    return open_client


def ok(result: CallToolResult) -> Any:
    """The tool's result, checked to be a success whose text and structured content agree."""
    assert not result.is_error, result
    return _value(result)


def failed(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    value = _value(result)
    assert isinstance(value, dict)
    return value


def _value(result: CallToolResult) -> Any:
    assert len(result.content) == 1 and result.content[0].type == "text"
    value = orjson.loads(result.content[0].text)
    assert result.structured_content == (value if isinstance(value, dict) else {"result": value})
    return value


async def rest_tasks(client: httpx.AsyncClient, user: AppUser) -> list[dict[str, Any]]:
    response = await client.get(user.url("/tasks"), headers=user.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_lists_the_chat_tools_with_their_schemas(connect: Connect, user: AppUser) -> None:
    async with connect(user.token) as mcp:
        listed = (await mcp.list_tools()).tools
    assert [tool.name for tool in listed] == list(TOOLS)
    specs = {spec.name: spec for spec in tool_specs()}
    for tool in listed:
        assert tool.input_schema == specs[tool.name].parameters
        assert tool.description == specs[tool.name].description


async def test_task_lifecycle_matches_rest(connect: Connect, client: httpx.AsyncClient, user: AppUser) -> None:
    async with connect(user.token) as mcp:
        created = ok(await mcp.call_tool("add_task", {"title": "Buy milk", "description": "2 litres"}))
        task_id = created["task_id"]
        assert created == {"task_id": task_id, "status": "created", "title": "Buy milk"}
        assert [(t["id"], t["title"], t["description"]) for t in await rest_tasks(client, user)] == [
            (task_id, "Buy milk", "2 litres")
        ]

        listed = ok(await mcp.call_tool("list_tasks", {}))
        assert listed == [
            {
                "id": task_id,
                "title": "Buy milk",
                "description": "2 litres",
                "completed": False,
                # the fields tasks gained keep the original ones as they were
                "priority": "normal",
                "tags": [],
                "due_at": None,
                "remind_at": None,
                "recurrence": None,
                "overdue": False,
            }
        ]

        completed = ok(await mcp.call_tool("complete_task", {"task_id": task_id}))
        assert completed == {"task_id": task_id, "status": "completed", "title": "Buy milk"}
        assert ok(await mcp.call_tool("list_tasks", {"status": "pending"})) == []

        updated = ok(await mcp.call_tool("update_task", {"task_id": task_id, "title": "Buy oat milk"}))
        assert updated == {"task_id": task_id, "status": "updated", "title": "Buy oat milk"}
        [task] = await rest_tasks(client, user)
        assert task["title"] == "Buy oat milk" and task["completed"] is True

        deleted = ok(await mcp.call_tool("delete_task", {"task_id": task_id}))
        assert deleted == {"task_id": task_id, "status": "deleted", "title": "Buy oat milk"}
        assert await rest_tasks(client, user) == []


async def test_update_task_reopens_and_completes(connect: Connect, client: httpx.AsyncClient, user: AppUser) -> None:
    """`completed` on update_task: false reopens a task, true completes it; the result keeps its shape."""
    async with connect(user.token) as mcp:
        schema = (await mcp.list_tools()).tools[list(TOOLS).index("update_task")].input_schema
        assert {"type": "boolean"} in schema["properties"]["completed"]["anyOf"]
        assert "completed" not in schema.get("required", [])

        task_id = ok(await mcp.call_tool("add_task", {"title": "Pay the bills"}))["task_id"]
        ok(await mcp.call_tool("complete_task", {"task_id": task_id}))

        reopened = ok(await mcp.call_tool("update_task", {"task_id": task_id, "completed": False}))
        assert reopened == {"task_id": task_id, "status": "updated", "title": "Pay the bills"}
        [task] = await rest_tasks(client, user)
        assert (task["title"], task["completed"]) == ("Pay the bills", False)
        assert [t["id"] for t in ok(await mcp.call_tool("list_tasks", {"status": "pending"}))] == [task_id]

        both = ok(await mcp.call_tool("update_task", {"task_id": task_id, "title": "Pay bills", "completed": True}))
        assert both == {"task_id": task_id, "status": "updated", "title": "Pay bills"}
        [task] = await rest_tasks(client, user)
        assert (task["title"], task["completed"]) == ("Pay bills", True)

        # null is "no change" for the fields that cannot be empty, so these change nothing
        for arguments in ({"task_id": task_id}, {"task_id": task_id, "completed": None, "title": None}):
            error = failed(await mcp.call_tool("update_task", arguments))
            assert error["error"] == "invalid_arguments" and "completed" in error["message"]
        bad = failed(await mcp.call_tool("update_task", {"task_id": task_id, "completed": "maybe"}))
        assert bad["error"] == "invalid_arguments" and "completed" in bad["message"]
    [task] = await rest_tasks(client, user)
    assert (task["title"], task["completed"]) == ("Pay bills", True)


async def test_errors_are_structured_results(connect: Connect, user: AppUser) -> None:
    missing = 999_999_999
    async with connect(user.token) as mcp:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("complete_task", {"task_id": missing}),
            ("delete_task", {"task_id": missing}),
            ("update_task", {"task_id": missing, "title": "x"}),
        ]
        for name, arguments in calls:
            error = failed(await mcp.call_tool(name, arguments))
            assert error == {"error": "not_found", "message": f"Task {missing} not found", "task_id": missing}
        assert failed(await mcp.call_tool("add_task", {"title": ""}))["error"] == "invalid_arguments"
        assert failed(await mcp.call_tool("update_task", {"task_id": missing}))["error"] == "invalid_arguments"
        assert failed(await mcp.call_tool("no_such_tool", {}))["error"] == "unknown_tool"


async def test_acts_only_for_the_tokens_user(
    connect: Connect, client: httpx.AsyncClient, make_user: MakeUser, user: AppUser
) -> None:
    intruder = await make_user()
    async with connect(user.token) as mcp:
        task_id = ok(await mcp.call_tool("add_task", {"title": "secret"}))["task_id"]

    async with connect(intruder.token) as mcp:
        assert ok(await mcp.call_tool("list_tasks", {})) == []
        # Someone else's task answers exactly like one that does not exist.
        for name in ("complete_task", "delete_task"):
            assert failed(await mcp.call_tool(name, {"task_id": task_id}))["error"] == "not_found"
        assert failed(await mcp.call_tool("update_task", {"task_id": task_id, "title": "mine"}))["error"] == "not_found"
        # The user is never an argument, so it cannot be smuggled in as one.
        smuggled = failed(await mcp.call_tool("add_task", {"title": "planted", "user_id": user.id}))
        assert smuggled["error"] == "invalid_arguments" and "user_id" in smuggled["message"]

    [task] = await rest_tasks(client, user)
    assert (task["id"], task["title"], task["completed"]) == (task_id, "secret", False)
    assert await rest_tasks(client, intruder) == []


async def test_open_websockets_see_mcp_changes(
    connect: Connect, server: LiveServer, make_user: MakeUser, user: AppUser
) -> None:
    bystander = await make_user()
    async with (
        await WSClient.open(server.ws_url, user.token) as ws,
        await WSClient.open(server.ws_url, bystander.token) as other_ws,
        connect(user.token) as mcp,
    ):
        task_id = ok(await mcp.call_tool("add_task", {"title": "from an agent"}))["task_id"]
        event = await ws.receive("task.created")
        assert event["task"]["id"] == task_id and event["task"]["title"] == "from an agent"

        ok(await mcp.call_tool("complete_task", {"task_id": task_id}))
        event = await ws.receive("task.updated")
        assert event["task"]["id"] == task_id and event["task"]["completed"] is True

        await other_ws.expect_nothing()


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "wrong-secret", "expired"],
    ids=["missing", "empty", "garbage", "basic", "wrong-secret", "expired"],
)
async def test_requests_without_a_valid_token_get_401(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser, authorization: str | None
) -> None:
    if authorization == "wrong-secret":
        other_secret = "another-secret-" + "y" * 40
        authorization = "Bearer " + access_token(user.id, user.session_id, seconds_left=60, secret=other_secret)
    elif authorization == "expired":
        authorization = "Bearer " + access_token(user.id, user.session_id, seconds_left=-60)
    headers = {**MCP_HEADERS, **({"Authorization": authorization} if authorization else {})}

    response = await client.post("/mcp", json=INITIALIZE, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == "unauthorized" and body["detail"]


async def test_the_same_request_with_the_token_succeeds(client: httpx.AsyncClient, user: AppUser) -> None:
    """The 401 test's request is a valid one: only its token was wrong."""
    response = await client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **user.headers})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["serverInfo"]["name"] == "todo-chatbot"


async def test_the_client_fails_without_a_valid_token(connect: Connect) -> None:
    with pytest.raises(ExceptionGroup) as excinfo:
        async with connect("not-a-jwt") as mcp:
            await mcp.list_tools()
    assert excinfo.group_contains(MCPError, depth=None)

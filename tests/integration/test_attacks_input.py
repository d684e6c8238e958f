"""Hostile input on every surface: ids out of range, NUL in text, oversized, nested and undecodable bodies,
invalid UTF-8 and unknown frames. Each is a clear 4xx or `error` frame, never a 5xx, a 503 "retry later"
or a dropped socket, and the server still answers afterwards.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.support.live import LiveServer
from tests.support.settings import PASSWORD
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser
from tests.support.wsclient import WSClient

OUT_OF_RANGE_IDS = [2**31, 2**63, 2**64, -1, 0]
"""Beyond PostgreSQL's `integer`, beyond any 64-bit integer, negative, and zero (ids start at 1)."""
OUT_OF_RANGE_SEQS = [2**63, 2**64, -1]
NUL = "before\x00after"
DUE = "2030-01-07T09:00:00Z"


async def assert_still_answers(client: httpx.AsyncClient, user: AppUser) -> None:
    assert (await client.get("/healthz")).status_code == 200
    response = await client.get(user.url("/tasks"), headers=user.headers)
    assert response.status_code == 200, response.text


def assert_invalid(response: httpx.Response, *, status: int = 422) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == "invalid"
    assert NUL not in response.text  # the input is never echoed back


# --- REST -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", OUT_OF_RANGE_IDS)
async def test_rest_ids_out_of_range_are_422(client: httpx.AsyncClient, user: AppUser, bad: int) -> None:
    calls = [
        ("GET", f"/api/{bad}/tasks", None),
        ("POST", f"/api/{bad}/tasks", {"title": "x"}),
        ("GET", user.url(f"/tasks/{bad}"), None),
        ("PATCH", user.url(f"/tasks/{bad}"), {"title": "x"}),
        ("PATCH", user.url(f"/tasks/{bad}/complete"), None),
        ("DELETE", user.url(f"/tasks/{bad}"), None),
        ("GET", f"/api/{bad}/conversations", None),
        ("GET", user.url(f"/conversations/{bad}/messages"), None),
        ("DELETE", user.url(f"/conversations/{bad}"), None),
        ("POST", user.url("/chat"), {"conversation_id": bad, "message": "hi"}),
    ]
    for method, url, body in calls:
        assert_invalid(await client.request(method, url, json=body, headers=user.headers))
    await assert_still_answers(client, user)


@pytest.mark.parametrize(
    "query",
    [
        "/tasks?offset=-1",
        f"/tasks?offset={2**31}",
        f"/tasks?offset={2**63}",
        "/tasks?limit=0",
        f"/tasks?limit={2**64}",
        f"/conversations?offset={2**63}",
        "/conversations/1/messages?before=0",
        f"/conversations/1/messages?before={2**31}",
        "/conversations/1/messages?after=-1",
        f"/conversations/1/messages?after={2**63}",
    ],
)
async def test_rest_paging_out_of_range_is_422(client: httpx.AsyncClient, user: AppUser, query: str) -> None:
    assert_invalid(await client.get(user.url(query), headers=user.headers))
    await assert_still_answers(client, user)


async def test_rest_nul_in_any_text_field_is_422(client: httpx.AsyncClient, user: AppUser) -> None:
    task = (await client.post(user.url("/tasks"), json={"title": "mine"}, headers=user.headers)).json()
    email = f"nul-{user.id}@example.com"
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/api/auth/signup", {"email": f"a{NUL}@example.com", "password": PASSWORD}),
        ("POST", "/api/auth/signup", {"email": email, "password": PASSWORD + NUL}),
        ("POST", "/api/auth/login", {"email": user.email, "password": user.password + NUL}),
        ("POST", "/api/auth/login", {"email": f"{NUL}@example.com", "password": user.password}),
        ("POST", user.url("/tasks"), {"title": NUL}),
        ("POST", user.url("/tasks"), {"title": "ok", "description": NUL}),
        ("PATCH", user.url(f"/tasks/{task['id']}"), {"title": NUL}),
        ("PATCH", user.url(f"/tasks/{task['id']}"), {"description": NUL}),
        ("POST", user.url("/chat"), {"message": NUL}),
        ("POST", user.url("/chat"), {"message": "hi", "client_msg_id": "a\x00b"}),
        ("POST", "/api/auth/signup", {"email": email, "password": PASSWORD, "device": NUL}),
        ("POST", "/api/auth/login", {"email": user.email, "password": user.password, "device": NUL}),
        ("POST", "/api/auth/refresh", {"refresh_token": user.refresh_token + NUL}),
        ("POST", "/api/auth/password", {"current_password": user.password + NUL, "new_password": PASSWORD + "!"}),
        ("POST", "/api/auth/password", {"current_password": user.password, "new_password": PASSWORD + NUL}),
        ("DELETE", "/api/auth/me", {"password": user.password + NUL}),
        ("PATCH", "/api/auth/me", {"timezone": f"Europe/Berlin{NUL}"}),
        ("POST", user.url("/tasks"), {"title": "ok", "tags": ["fine", NUL]}),
        ("PATCH", user.url(f"/tasks/{task['id']}"), {"tags": [NUL]}),
        ("POST", user.url("/tasks"), {"title": "ok", "due_at": DUE, "recurrence": f"FREQ=DAILY{NUL}"}),
        ("PATCH", user.url(f"/tasks/{task['id']}"), {"recurrence": f"FREQ=WEEKLY;BYDAY=MO{NUL}"}),
    ]
    for method, url, body in calls:
        assert_invalid(await client.request(method, url, json=body, headers=user.headers))
    for params in ({"q": NUL}, {"tag": NUL}, {"tag": ["fine", NUL]}):
        assert_invalid(await client.get(user.url("/tasks"), params=params, headers=user.headers))
    assert_invalid(await client.delete("/api/auth/sessions/before%00after", headers=user.headers))
    # Nothing was stored: the task is unchanged and no conversation was started.
    stored = (await client.get(user.url(f"/tasks/{task['id']}"), headers=user.headers)).json()
    assert (stored["title"], stored["tags"], stored["recurrence"]) == ("mine", [], None)
    assert (await client.get(user.url("/tasks"), headers=user.headers)).json()["count"] == 1
    assert (await client.get(user.url("/conversations"), headers=user.headers)).json()["count"] == 0
    me = (await client.get("/api/auth/me", headers=user.headers)).json()
    assert me["timezone"] == "UTC"  # and the password and the session are unchanged:
    assert (
        await client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    ).status_code == 200
    assert (await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})).status_code == 401
    await assert_still_answers(client, user)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"title": "' + b"x" * 2_000_000 + b'"}', 413, "too_large"),
        (b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, "invalid"),
        (b'{"title": "\xff\xfe"}', 422, "invalid"),
        (b'{"title": "\\ud800"}', 422, "invalid"),  # a lone surrogate: valid JSON, not text
        (b"{not json", 422, "invalid"),
        (b"[]", 422, "invalid"),
    ],
    ids=["oversized", "deeply-nested", "invalid-utf8", "lone-surrogate", "malformed", "not-an-object"],
)
async def test_rest_bodies_that_cannot_be_read(
    client: httpx.AsyncClient, user: AppUser, body: bytes, status: int, code: str
) -> None:
    headers = {**user.headers, "content-type": "application/json"}
    for url in (user.url("/tasks"), "/api/auth/login"):
        response = await client.post(url, content=body, headers=headers)
        assert response.status_code == status, (url, response.text[:200])
        assert response.json()["code"] == code
    assert (await client.get(user.url("/tasks"), headers=user.headers)).json()["count"] == 0
    await assert_still_answers(client, user)


async def test_a_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient, user: AppUser) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = await client.post(
        user.url("/tasks"), content=chunks(), headers={**user.headers, "content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    await assert_still_answers(client, user)


# --- WebSocket ------------------------------------------------------------------------------


def _frames() -> list[tuple[dict[str, Any] | str, str]]:
    frames: list[tuple[dict[str, Any] | str, str]] = []
    for bad in OUT_OF_RANGE_IDS:
        frames.append(({"type": "chat", "conversation_id": bad, "message": "hi", "client_msg_id": "c1"}, "invalid"))
    for bad in OUT_OF_RANGE_SEQS:
        frames.append(({"type": "resume", "after_seq": bad}, "invalid"))
    for turn_id in ["x" * 65, "g" * 32, "A" * 32, "\x00" * 32, "", "1"]:
        frames.append(({"type": "cancel", "turn_id": turn_id}, "invalid"))
    frames += [
        ({"type": "chat", "message": NUL, "client_msg_id": "c2"}, "invalid"),
        ({"type": "chat", "message": "hi", "client_msg_id": "c\x003"}, "invalid"),
        ({"type": "chat", "message": "hi", "client_msg_id": "c4", "conversation_id": 1.5}, "invalid"),
        ({"type": "chat", "message": "hi", "client_msg_id": "c5", "conversation_id": True}, "invalid"),
        ({"type": "resume", "after_seq": "1"}, "invalid"),
        ({"type": "ping", "id": [1, 2]}, "invalid"),
        ({"type": "auth.refresh", "token": NUL}, "unauthorized"),  # a JWT with a NUL fails its signature
        ({"type": "reminder.snooze", "task_id": 1, "minutes": f"5{NUL}"}, "invalid"),
        ({"type": "reminder.snooze", "task_id": f"1{NUL}", "minutes": 5}, "invalid"),
        ({"type": "reminder.dismiss", "task_id": f"1{NUL}"}, "invalid"),
        ({"type": f"reminder.snooze{NUL}", "task_id": 1, "minutes": 5}, "unknown_type"),
        ({"type": "resume", "after_seq": NUL}, "invalid"),
        ({"type": "x" * 5000}, "unknown_type"),
        ({"type": None}, "unknown_type"),
        ({"type": {"nested": "type"}}, "unknown_type"),
        ("[" * 10_000 + "]" * 10_000, "bad_json"),  # deeper than the parser goes
        ('{"type": "ping", "id": ' + "[" * 2000 + "]" * 2000 + "}", "bad_json"),
        ('{"type": "ping", "id": 1e999}', "bad_json"),
        ('{"type": "chat", "message": "\\ud800", "client_msg_id": "c6"}', "bad_json"),  # a lone surrogate
        ("null", "bad_json"),
        ("", "bad_json"),
    ]
    return frames


FRAMES = _frames()


@pytest.mark.parametrize(("frame", "code"), FRAMES, ids=[f"frame-{n}" for n in range(len(FRAMES))])
async def test_ws_bad_frames_get_an_error_and_the_socket_stays(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser, frame: dict[str, Any] | str, code: str
) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send(frame if isinstance(frame, str) else json.dumps(frame))  # orjson stops at 64 bits
        error = await ws.receive("error")
        assert error["code"] == code, error
        assert len(error["detail"]) < 300 and NUL not in error["detail"]
        await ws.send({"type": "ping", "id": "still-open"})
        await ws.receive("pong", id="still-open")
        await ws.expect_nothing("ack")
    await assert_still_answers(client, user)


async def test_ws_binary_frames_get_an_error(client: httpx.AsyncClient, server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        for payload in (b"\x00\x01\xff", orjson.dumps({"type": "ping", "id": 1}), b""):
            await ws.send(payload)
            assert (await ws.receive("error"))["code"] == "bad_json"
        await ws.send({"type": "ping", "id": "after"})
        await ws.receive("pong", id="after")
    await assert_still_answers(client, user)


async def test_ws_invalid_utf8_text_closes_1007_and_the_server_still_answers(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser
) -> None:
    """RFC 6455 section 8.1: a text frame that is not UTF-8 fails the connection (1007); nothing else breaks."""
    ws = await WSClient.open(server.ws_url, user.token)
    await ws.connection.send(b'{"type": "ping", "id": "\xff"}', text=True)
    code, _ = await ws.closed()
    assert code == 1007
    async with await WSClient.open(server.ws_url, user.token) as again:
        await again.send({"type": "ping", "id": 1})
        await again.receive("pong", id=1)
    await assert_still_answers(client, user)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "auth", "token": "x", "after_seq": 2**63},
        {"type": "auth", "token": "x", "after_seq": -1},
        {"type": "x" * 5000},
        {"type": "chat", "message": "hi", "client_msg_id": "c"},
    ],
    ids=["after-seq-too-big", "after-seq-negative", "long-unknown-type", "not-auth"],
)
async def test_ws_bad_first_frames_close_4401_with_a_short_reason(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser, frame: dict[str, Any]
) -> None:
    ws = await WSClient.open(server.ws_url, None, expect_hello=False)
    await ws.send(json.dumps({**frame, "token": user.token} if frame["type"] == "auth" else frame))
    code, reason = await ws.closed()
    assert code == 4401 and reason and len(reason.encode()) <= 123
    await assert_still_answers(client, user)


async def test_ws_out_of_range_after_seq_in_the_url_is_ignored(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(f"{server.ws_url}?after_seq={2**70}", user.token) as ws:
        await ws.send({"type": "ping", "id": 1})
        await ws.receive("pong", id=1)


# --- MCP and the assistant's tools -----------------------------------------------------------

Connect = Callable[[str], AbstractAsyncContextManager[Client]]


@pytest.fixture
def connect(server: LiveServer) -> Connect:
    @asynccontextmanager
    async def open_client(token: str) -> AsyncIterator[Client]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT) as http,
            Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client,
        ):
            yield client

    return open_client


def error_of(result: CallToolResult) -> dict[str, Any]:
    assert result.is_error, result
    assert result.content[0].type == "text"
    value: dict[str, Any] = orjson.loads(result.content[0].text)
    return value


async def test_mcp_arguments_out_of_range_or_with_nul_are_invalid(
    client: httpx.AsyncClient, connect: Connect, user: AppUser
) -> None:
    async with connect(user.token) as mcp:
        for bad in OUT_OF_RANGE_IDS:
            for name in ("complete_task", "delete_task"):
                assert error_of(await mcp.call_tool(name, {"task_id": bad}))["error"] == "invalid_arguments"
            error = error_of(await mcp.call_tool("update_task", {"task_id": bad, "title": "x"}))
            assert error["error"] == "invalid_arguments" and "task_id" in error["message"]
        for arguments in ({"title": NUL}, {"title": "ok", "description": NUL}):
            error = error_of(await mcp.call_tool("add_task", arguments))
            assert error["error"] == "invalid_arguments" and NUL not in error["message"]
        assert (
            error_of(await mcp.call_tool("update_task", {"task_id": 1, "title": NUL}))["error"] == "invalid_arguments"
        )
        assert error_of(await mcp.call_tool(f"add{NUL}task", {"title": "x"}))["error"] == "unknown_tool"
    assert (await client.get(user.url("/tasks"), headers=user.headers)).json()["count"] == 0
    await assert_still_answers(client, user)


async def test_mcp_bodies_that_cannot_be_read(client: httpx.AsyncClient, user: AppUser) -> None:
    headers = {**user.headers, "Accept": "application/json, text/event-stream", "content-type": "application/json"}
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"jsonrpc": "2.0", "id": 1, "method": "\xff"}', b"{not json"):
        response = await client.post("/mcp", content=body, headers=headers)
        assert 400 <= response.status_code < 500, response.text[:200]
    huge = await client.post("/mcp", content=b'{"x": "' + b"x" * 2_000_000 + b'"}', headers=headers)
    assert huge.status_code == 413 and huge.json()["code"] == "too_large"
    await assert_still_answers(client, user)


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30])
async def test_assistant_tool_calls_with_huge_task_numbers_end_well(
    assistant_server: LiveServer, client: httpx.AsyncClient, user: AppUser, number: int
) -> None:
    async with await WSClient.open(assistant_server.ws_url, user.token) as ws:
        await ws.chat(f"mark task {number} as done")
        frames = await ws.until("turn.end")
    end = frames[-1]
    assert end["status"] == "done", end
    results = [f["result"] for f in frames if f["type"] == "tool.result"]
    assert all(isinstance(r, dict) and r.get("error") in {"invalid_arguments", "not_found"} for r in results), results
    await assert_still_answers(client, user)

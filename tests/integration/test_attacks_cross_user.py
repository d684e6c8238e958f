"""One user attacks another's data on every surface, while a watcher socket of each listens.

REST (tasks, conversations, messages, chat), WebSocket (chat into, cancel of and resume over the
victim's data) and MCP (the victim's task ids). Every attempt is refused as if the data did not
exist; the victim's watcher hears nothing of the attacker, the attacker's hears nothing of the
victim, and the victim's data is untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import orjson
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live import LiveServer
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

LONG = "x" * 3000
"""A message whose echo streams for over a second: time to try cancelling it."""


def received(ws: WSClient) -> list[dict[str, Any]]:
    """Every frame after `hello`."""
    return [frame for frame in ws.log if frame["type"] != "hello"]


@asynccontextmanager
async def mcp_client(server: LiveServer, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT) as http,
        Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client,
    ):
        yield client


async def snapshot(client: httpx.AsyncClient, user: AppUser, conversation_id: int) -> dict[str, Any]:
    tasks = (await client.get(user.url("/tasks"), headers=user.headers)).json()
    conversations = (await client.get(user.url("/conversations"), headers=user.headers)).json()
    messages = await client.get(user.url(f"/conversations/{conversation_id}/messages"), headers=user.headers)
    return {"tasks": tasks, "conversations": conversations, "messages": messages.json()}


async def test_nothing_of_one_user_is_reachable_by_another(
    client: httpx.AsyncClient, server: LiveServer, make_user: MakeUser
) -> None:
    victim, attacker = await make_user(), await make_user()
    task = (
        await client.post(victim.url("/tasks"), json={"title": "victim's secret task"}, headers=victim.headers)
    ).json()
    async with await WSClient.open(server.ws_url, victim.token) as ws:
        await ws.chat("victim's private words")
        first = await ws.receive("ack")
        await ws.receive("turn.end")
    conversation_id, task_id = first["conversation_id"], task["id"]
    before = await snapshot(client, victim, conversation_id)

    async with (
        await WSClient.open(server.ws_url, victim.token) as victim_watch,
        await WSClient.open(server.ws_url, attacker.token, via="frame") as attacker_watch,
        await WSClient.open(server.ws_url, attacker.token) as attacker_ws,
    ):
        # REST with the victim's URLs: 403, whatever the method.
        for method, path, body in [
            ("GET", "/tasks", None),
            ("POST", "/tasks", {"title": "planted"}),
            ("GET", f"/tasks/{task_id}", None),
            ("PATCH", f"/tasks/{task_id}", {"completed": True}),
            ("PATCH", f"/tasks/{task_id}/complete", None),
            ("DELETE", f"/tasks/{task_id}", None),
            ("GET", "/conversations", None),
            ("GET", f"/conversations/{conversation_id}/messages", None),
            ("DELETE", f"/conversations/{conversation_id}", None),
            ("POST", "/chat", {"message": "hello", "conversation_id": conversation_id}),
        ]:
            response = await client.request(method, victim.url(path), json=body, headers=attacker.headers)
            assert response.status_code == 403, (method, path, response.text)
            assert "secret" not in response.text and "private" not in response.text

        # REST with the attacker's own URLs and the victim's ids: 404, like ids that never existed.
        for method, path, body in [
            ("GET", f"/tasks/{task_id}", None),
            ("PATCH", f"/tasks/{task_id}", {"title": "mine now"}),
            ("PATCH", f"/tasks/{task_id}/complete", None),
            ("DELETE", f"/tasks/{task_id}", None),
            ("GET", f"/conversations/{conversation_id}/messages", None),
            ("DELETE", f"/conversations/{conversation_id}", None),
            ("POST", "/chat", {"message": "hello", "conversation_id": conversation_id}),
        ]:
            response = await client.request(method, attacker.url(path), json=body, headers=attacker.headers)
            assert response.status_code == 404, (method, path, response.text)
            assert "secret" not in response.text and "private" not in response.text

        # WebSocket: a chat into the victim's conversation, a resume from the beginning of time.
        await attacker_ws.chat("let me in", conversation_id=conversation_id, client_msg_id="intruder-1")
        assert (await attacker_ws.receive("error"))["code"] == "not_found"
        await attacker_ws.send({"type": "resume", "after_seq": 0})
        await attacker_ws.send({"type": "ping", "id": "resumed"})
        await attacker_ws.receive("pong", id="resumed")

        # MCP with the victim's task id.
        async with mcp_client(server, attacker.token) as mcp:
            assert orjson.loads((await mcp.call_tool("list_tasks", {})).content[0].text) == []  # type: ignore[union-attr]
            for name, arguments in [
                ("complete_task", {"task_id": task_id}),
                ("delete_task", {"task_id": task_id}),
                ("update_task", {"task_id": task_id, "title": "mine now"}),
            ]:
                result = await mcp.call_tool(name, arguments)
                assert result.is_error and "not_found" in result.content[0].text, result  # type: ignore[union-attr]

        # The victim starts a long turn; the attacker tries to cancel it with its real id.
        async with await WSClient.open(server.ws_url, victim.token) as victim_ws:
            await victim_ws.chat(LONG, conversation_id=conversation_id)
            running = await victim_ws.receive("ack")
            await attacker_ws.send({"type": "cancel", "turn_id": running["turn_id"]})
            assert (await attacker_ws.receive("error"))["code"] == "not_found"
            end = await victim_ws.receive("turn.end", turn_id=running["turn_id"])
            assert end["status"] == "done"  # the attacker's cancel did nothing

        # The victim's watcher saw its own turn and nothing else; the attacker's saw nothing at all.
        await victim_watch.seen("turn.end", turn_id=running["turn_id"])
        await victim_watch.expect_nothing()
        assert {f.get("turn_id", running["turn_id"]) for f in received(victim_watch)} == {running["turn_id"]}
        assert {f["type"] for f in received(victim_watch)} <= {"message", "turn.start", "delta", "turn.end"}
        await attacker_watch.expect_nothing()
        assert received(attacker_watch) == []
        assert [f["type"] for f in received(attacker_ws)] == ["error", "pong", "error"]  # nothing replayed

    after = await snapshot(client, victim, conversation_id)
    assert after["tasks"] == before["tasks"]
    assert [c["id"] for c in after["conversations"]["data"]] == [conversation_id]
    assert after["messages"]["data"][: len(before["messages"]["data"])] == before["messages"]["data"]
    assert [m["content"] for m in after["messages"]["data"]][-2:] == [LONG, "Echo: " + LONG]
    assert (await client.get(attacker.url("/tasks"), headers=attacker.headers)).json() == {"data": [], "count": 0}
    assert (await client.get(attacker.url("/conversations"), headers=attacker.headers)).json()["count"] == 0


async def test_the_victims_actions_never_reach_the_attackers_sockets(
    client: httpx.AsyncClient, server: LiveServer, make_user: MakeUser
) -> None:
    victim, attacker = await make_user(), await make_user()
    async with (
        await WSClient.open(server.ws_url, attacker.token) as attacker_watch,
        await WSClient.open(server.ws_url, victim.token) as victim_ws,
    ):
        created = await client.post(victim.url("/tasks"), json={"title": "victim only"}, headers=victim.headers)
        await client.patch(victim.url(f"/tasks/{created.json()['id']}/complete"), headers=victim.headers)
        async with mcp_client(server, victim.token) as mcp:
            await mcp.call_tool("add_task", {"title": "victim via mcp"})
        await victim_ws.chat("victim talking")
        await victim_ws.receive("turn.end")
        await attacker_watch.expect_nothing()
    assert received(attacker_watch) == []

"""The eight reference commands, end to end over REST and over WebSocket, judged by the task state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.live import LiveServer
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient

Say = Callable[[str], Awaitable[dict[str, Any]]]
"""Send one message in the conversation; returns {response, tool_calls}."""


@pytest.fixture
async def http(assistant_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=assistant_server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def owner(assistant_server: LiveServer) -> AppUser:
    return await signup(assistant_server.base_url)


@pytest.fixture(params=["rest", "websocket"])
async def say(
    request: pytest.FixtureRequest, assistant_server: LiveServer, http: httpx.AsyncClient, owner: AppUser
) -> AsyncIterator[Say]:
    conversation: dict[str, int | None] = {"id": None}
    if request.param == "rest":

        async def over_rest(message: str) -> dict[str, Any]:
            response = await http.post(
                owner.url("/chat"),
                json={"message": message, "conversation_id": conversation["id"]},
                headers=owner.headers,
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            conversation["id"] = body["conversation_id"]
            return body

        yield over_rest
        return

    ws = await WSClient.open(assistant_server.ws_url, owner.token)

    async def over_socket(message: str) -> dict[str, Any]:
        await ws.chat(message, conversation_id=conversation["id"])
        ack = await ws.receive("ack")
        conversation["id"] = ack["conversation_id"]
        frames = await ws.until("turn.end", turn_id=ack["turn_id"])
        assert frames[-1]["status"] == "done"
        results = {f["call_id"]: f["result"] for f in frames if f["type"] == "tool.result"}
        calls = [
            {"name": f["name"], "arguments": f["arguments"], "result": results[f["call_id"]]}
            for f in frames
            if f["type"] == "tool.call"
        ]
        reply = "".join(f["text"] for f in frames if f["type"] == "delta" and f["turn_id"] == ack["turn_id"])
        final = next(f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")
        assert final["message"]["content"] == reply  # the streamed deltas add up to the stored reply
        return {"response": reply, "tool_calls": calls}

    yield over_socket
    await ws.close()


async def tasks_of(http: httpx.AsyncClient, owner: AppUser) -> dict[str, bool]:
    body = (await http.get(owner.url("/tasks"), headers=owner.headers)).json()
    return {task["title"]: task["completed"] for task in body["data"]}


async def task_id(http: httpx.AsyncClient, owner: AppUser, title: str) -> int:
    body = (await http.get(owner.url("/tasks"), headers=owner.headers)).json()
    return int(next(task["id"] for task in body["data"] if task["title"] == title))


async def test_the_eight_reference_commands(say: Say, http: httpx.AsyncClient, owner: AppUser) -> None:
    await say("Add a task to buy groceries")
    assert await tasks_of(http, owner) == {"Buy groceries": False}

    await http.post(owner.url("/tasks"), json={"title": "Team meeting prep"}, headers=owner.headers)
    await http.post(owner.url("/tasks"), json={"title": "Call mom"}, headers=owner.headers)

    pending = await say("What's pending?")
    assert [c["name"] for c in pending["tool_calls"]] == ["list_tasks"]
    assert pending["tool_calls"][0]["arguments"].get("status") == "pending"
    assert "Buy groceries" in pending["response"] and "Call mom" in pending["response"]

    groceries = await task_id(http, owner, "Buy groceries")
    await say(f"Mark task {groceries} as complete")
    assert (await tasks_of(http, owner))["Buy groceries"] is True

    await say("Delete the meeting task")
    assert "Team meeting prep" not in await tasks_of(http, owner)

    mom = await task_id(http, owner, "Call mom")
    await say(f"Change task {mom} to 'Call mom tonight'")
    assert await tasks_of(http, owner) == {"Buy groceries": True, "Call mom tonight": False}

    await say("I need to remember to pay bills")
    assert await tasks_of(http, owner) == {"Buy groceries": True, "Call mom tonight": False, "Pay bills": False}

    completed = await say("What have I completed?")
    assert completed["tool_calls"][0]["arguments"].get("status") == "completed"
    assert "Buy groceries" in completed["response"] and "Pay bills" not in completed["response"]

    everything = await say("Show me all my tasks")
    assert all(title in everything["response"] for title in ("Buy groceries", "Call mom tonight", "Pay bills"))
    assert await tasks_of(http, owner) == {"Buy groceries": True, "Call mom tonight": False, "Pay bills": False}


async def test_follow_up_with_it_survives_in_the_persisted_history(
    say: Say, http: httpx.AsyncClient, owner: AppUser
) -> None:
    await say("Remind me to water the plants")
    await say("Actually, mark it as done")
    assert await tasks_of(http, owner) == {"Water the plants": True}


async def test_reports_complete_and_reopening_undoes(say: Say, http: httpx.AsyncClient, owner: AppUser) -> None:
    for title in ("Pay the bills", "Call mom", "Email mom"):
        await http.post(owner.url("/tasks"), json={"title": title}, headers=owner.headers)

    await say("I've paid the bills")
    await say("just called mom")
    assert await tasks_of(http, owner) == {"Pay the bills": True, "Call mom": True, "Email mom": False}

    reopened = await say("reopen it")
    assert [(c["name"], c["arguments"]) for c in reopened["tool_calls"]] == [
        ("update_task", {"task_id": await task_id(http, owner, "Call mom"), "completed": False})
    ]
    assert reopened["tool_calls"][0]["result"]["status"] == "updated"
    await say("mark the bills task as not done")
    assert await tasks_of(http, owner) == {"Pay the bills": False, "Call mom": False, "Email mom": False}

    await say("I need to pay the bills")  # a duty, not a report: a new task
    body = (await http.get(owner.url("/tasks"), headers=owner.headers)).json()
    assert sorted((t["title"], t["completed"]) for t in body["data"]) == [
        ("Call mom", False),
        ("Email mom", False),
        ("Pay the bills", False),
        ("Pay the bills", False),
    ]


async def test_times_are_read_in_the_users_time_zone(say: Say, http: httpx.AsyncClient, owner: AppUser) -> None:
    """The zone read with the accepted message reaches the agent: "tomorrow at 9" is 09:00 in Auckland."""
    zone = ZoneInfo("Pacific/Auckland")
    patched = await http.patch("/api/auth/me", json={"timezone": "Pacific/Auckland"}, headers=owner.headers)
    assert patched.status_code == 200, patched.text
    before = datetime.now(zone).date()
    reply = await say("remind me to call the bank tomorrow at 9")
    after = datetime.now(zone).date()
    [task] = (await http.get(owner.url("/tasks"), headers=owner.headers)).json()["data"]
    due = datetime.fromisoformat(task["due_at"])
    assert task["title"] == "Call the bank" and task["remind_at"] is not None
    assert datetime.fromisoformat(task["remind_at"]) == due
    assert due in {datetime.combine(d + timedelta(days=1), time(9), tzinfo=zone) for d in (before, after)}
    assert f"{due.astimezone(zone):%a} {due.astimezone(zone).day} {due.astimezone(zone):%b}, 09:00" in reply["response"]


async def test_rest_chat_validation_and_ownership(http: httpx.AsyncClient, owner: AppUser) -> None:
    assert (await http.post(owner.url("/chat"), json={"message": "hi"})).status_code == 401
    assert (await http.post(owner.url("/chat"), json={"message": ""}, headers=owner.headers)).status_code == 422
    assert (await http.post(owner.url("/chat"), json={"message": "   "}, headers=owner.headers)).status_code == 422
    too_long = await http.post(owner.url("/chat"), json={"message": "x" * 10_001}, headers=owner.headers)
    assert too_long.status_code == 422
    other = f"/api/{owner.id + 1}/chat"
    assert (await http.post(other, json={"message": "hi"}, headers=owner.headers)).status_code == 403
    missing = await http.post(
        owner.url("/chat"), json={"message": "hi", "conversation_id": 999_999_999}, headers=owner.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_rest_turn_shows_up_live_on_sockets(
    assistant_server: LiveServer, http: httpx.AsyncClient, owner: AppUser
) -> None:
    async with await WSClient.open(assistant_server.ws_url, owner.token) as ws:
        body = (
            await http.post(owner.url("/chat"), json={"message": "Add a task to buy stamps"}, headers=owner.headers)
        ).json()
        created = await ws.receive("task.created")
        end = await ws.receive("turn.end")
    assert created["task"]["title"] == "Buy stamps"
    assert end["conversation_id"] == body["conversation_id"] and end["status"] == "done"
    assert body["tool_calls"][0]["name"] == "add_task"
    assert body["tool_calls"][0]["result"] == {
        "task_id": created["task"]["id"],
        "status": "created",
        "title": "Buy stamps",
    }


async def test_rest_retry_with_the_same_key_is_one_turn(http: httpx.AsyncClient, owner: AppUser) -> None:
    request = {"message": "Add a task to renew passport", "client_msg_id": "rest-retry-1"}
    first = (await http.post(owner.url("/chat"), json=request, headers=owner.headers)).json()
    second = (await http.post(owner.url("/chat"), json=request, headers=owner.headers)).json()
    assert first == second
    assert await tasks_of(http, owner) == {"Renew passport": False}


async def test_a_tool_call_goes_out_as_the_protocol_reference_shows_it(
    assistant_server: LiveServer, owner: AppUser
) -> None:
    """tool.call, the task's event, tool.result: consecutive seqs, and a reconnect replays the very same frames."""
    async with await WSClient.open(assistant_server.ws_url, owner.token) as ws:
        await ws.chat("Add a task to buy groceries")
        ack = await ws.receive("ack")
        await ws.until("turn.end", turn_id=ack["turn_id"])
        live = [frame for frame in ws.log if "seq" in frame and frame["type"] != "ack"]
    assert [(frame["type"], frame["seq"] - ack["seq"]) for frame in live] == [
        ("message", 0),
        ("turn.start", 1),
        ("tool.call", 2),
        ("task.created", 3),
        ("tool.result", 4),
        ("message", 5),
        ("turn.end", 6),
    ]
    call, created, result = live[2:5]
    assert call["call_id"] == result["call_id"] and call["name"] == "add_task"
    assert call["turn_id"] == result["turn_id"] == ack["turn_id"]
    assert result["result"] == {"task_id": created["task"]["id"], "status": "created", "title": "Buy groceries"}
    async with await WSClient.open(assistant_server.ws_url, owner.token, via="frame", after_seq=ack["seq"] - 1) as ws:
        replayed = [await ws.next() for _ in live]
    assert replayed == live

"""The assistant on a model server, end to end: the real app, REST and WebSocket, a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.app import create_app
from tests.fakes.openai_server import (
    Disconnect,
    ErrorStatus,
    FakeOpenAIServer,
    Flush,
    Hold,
    Pause,
    Raw,
    Response,
    Step,
    Stream,
    StreamError,
    Text,
    Truncate,
    text_reply,
    tool_reply,
)
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import QUIET, TIMEOUT
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

IDLE = QUIET * 3
"""The app's LLM_IDLE_TIMEOUT here: a stall is noticed fast, a loaded machine's chunk gaps are not stalls."""


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
async def server(fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """This module's own app (SQLite, in-process broker) with the assistant on the fake model server.

    Named like the shared fixture, so `client`, `user` and `make_user` use this app.
    """
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('openai') / 'app.db'}",
        assistant_provider="openai",
        llm_base_url=fake.base_url,
        llm_model="fake-model",
        llm_api_key="sk-test",
        llm_timeout=TIMEOUT,
        llm_idle_timeout=IDLE,
        llm_max_retries=2,
        llm_retry_backoff=0.01,
    )
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.fixture
def model(fake: FakeOpenAIServer) -> FakeOpenAIServer:
    fake.reset()
    return fake


async def messages_of(client: httpx.AsyncClient, user: AppUser, conversation_id: int) -> list[dict[str, Any]]:
    response = await client.get(user.url(f"/conversations/{conversation_id}/messages"), headers=user.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


# --- REST ----------------------------------------------------------------------------------------


async def test_rest_turn_adds_a_task(client: httpx.AsyncClient, user: AppUser, model: FakeOpenAIServer) -> None:
    model.queue(
        tool_reply(("call_1", "add_task", {"title": "Buy milk"})),
        text_reply("Added 'Buy milk' to your list."),
    )
    response = await client.post(user.url("/chat"), json={"message": "Remind me to buy milk"}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == "Added 'Buy milk' to your list."
    [call] = body["tool_calls"]
    assert call["name"] == "add_task" and call["arguments"] == {"title": "Buy milk"}
    assert call["result"]["status"] == "created" and call["result"]["title"] == "Buy milk"

    tasks = (await client.get(user.url("/tasks"), headers=user.headers)).json()
    assert [(t["id"], t["title"], t["completed"]) for t in tasks["data"]] == [
        (call["result"]["task_id"], "Buy milk", False)
    ]
    first, second = model.requests
    assert first.messages[-1] == {"role": "user", "content": "Remind me to buy milk"}
    assert second.messages[-1]["role"] == "tool" and second.messages[-1]["tool_call_id"] == "call_1"
    assert f'"task_id":{call["result"]["task_id"]}' in second.messages[-1]["content"]

    history = await messages_of(client, user, body["conversation_id"])
    assert [(m["role"], m.get("status")) for m in history] == [("user", None), ("tool", None), ("assistant", "done")]


async def test_tools_act_only_for_the_authenticated_user(
    client: httpx.AsyncClient, user: AppUser, make_user: MakeUser, model: FakeOpenAIServer
) -> None:
    other = await make_user()
    created = await client.post(other.url("/tasks"), json={"title": "Not yours"}, headers=other.headers)
    foreign_id = created.json()["id"]
    # The model asks for another user's task id: the tool runs as `user`, so it is not found.
    model.queue(
        tool_reply(("call_1", "complete_task", {"task_id": foreign_id})),
        text_reply("I could not find that task."),
    )
    response = await client.post(user.url("/chat"), json={"message": f"complete {foreign_id}"}, headers=user.headers)
    assert response.status_code == 200, response.text
    [call] = response.json()["tool_calls"]
    assert call["result"]["error"] == "not_found"
    task = await client.get(other.url(f"/tasks/{foreign_id}"), headers=other.headers)
    assert task.json()["completed"] is False


def _after_text(*steps: Step) -> Stream:
    return Stream(Text("Adding "), Text("that"), *steps)


@pytest.mark.parametrize(
    ("failure", "partial", "reason"),
    [
        (_after_text(StreamError("overloaded")), "Adding that", "overloaded"),
        (_after_text(Disconnect()), "Adding that", "closed the connection"),
        (_after_text(), "Adding that", "ended the reply before finishing it"),  # [DONE], no finish reason
        (_after_text(Truncate()), "Adding that", "ended the reply before finishing it"),
        (_after_text(Raw({"choices": "none"})), "Adding that", "malformed response"),
        (_after_text(Pause(TIMEOUT), Text(" later")), "Adding that", f"stopped sending for {IDLE:g}s"),
        (ErrorStatus(401, "bad key"), "", "rejected the API key"),
        (ErrorStatus(400, "bad request"), "", "refused the request (400)"),
    ],
    ids=["error-event", "disconnect", "no-finish-reason", "cut", "malformed", "stall", "401", "400"],
)
async def test_rest_upstream_failure_is_502_and_keeps_the_partial_reply(
    client: httpx.AsyncClient, user: AppUser, model: FakeOpenAIServer, failure: Response, partial: str, reason: str
) -> None:
    model.queue(text_reply("Hello!"))
    first = await client.post(user.url("/chat"), json={"message": "hi"}, headers=user.headers)
    conversation_id = first.json()["conversation_id"]

    # Nothing is retried: text had reached the user, or the status is one a retry cannot cure.
    model.queue(failure, text_reply("A second attempt that must not be made."))
    response = await client.post(
        user.url("/chat"), json={"message": "add tea", "conversation_id": conversation_id}, headers=user.headers
    )
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "upstream" and reason in response.json()["detail"]
    last = (await messages_of(client, user, conversation_id))[-1]
    assert (last["role"], last["content"], last["status"]) == ("assistant", partial, "failed")
    assert len(model.requests) == 2


BEFORE_ANY_TEXT: dict[str, list[Response]] = {
    "429-then-503": [
        ErrorStatus(429, headers={"retry-after-ms": "20"}),
        ErrorStatus(503, headers={"retry-after": "0"}),
    ],
    "drop-before-first-token": [Stream(Disconnect())],
    "cut-before-first-token": [Stream(Flush(), Truncate())],
    "stall-before-first-token": [Stream(Flush(), Pause(TIMEOUT), Text("late"))],
}


@pytest.mark.parametrize("failures", BEFORE_ANY_TEXT.values(), ids=BEFORE_ANY_TEXT.keys())
async def test_rest_turn_survives_failures_before_any_text(
    client: httpx.AsyncClient, user: AppUser, model: FakeOpenAIServer, failures: list[Response]
) -> None:
    model.queue(*failures, tool_reply(("call_1", "add_task", {"title": "Buy tea"})), text_reply("Added 'Buy tea'."))
    response = await client.post(user.url("/chat"), json={"message": "add tea"}, headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["response"] == "Added 'Buy tea'." and [c["name"] for c in body["tool_calls"]] == ["add_task"]
    tasks = (await client.get(user.url("/tasks"), headers=user.headers)).json()
    assert [t["title"] for t in tasks["data"]] == ["Buy tea"]  # the tool ran once, whatever was retried
    assert len(model.requests) == len(failures) + 2
    history = await messages_of(client, user, body["conversation_id"])
    assert [(m["role"], m.get("status")) for m in history] == [("user", None), ("tool", None), ("assistant", "done")]


# --- WebSocket -----------------------------------------------------------------------------------


async def test_ws_turn_streams_tool_frames_and_deltas(
    server: LiveServer, user: AppUser, model: FakeOpenAIServer
) -> None:
    model.queue(
        tool_reply(("call_1", "add_task", {"title": "Walk the dog", "description": "before 9"}), text="Sure. "),
        text_reply("'Walk the dog' is on your list."),
    )
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("remind me to walk the dog before 9")
        frames = await ws.until("turn.end")

    types = [frame["type"] for frame in frames]
    assert [t for t in types if t != "delta"] == [
        "ack",
        "message",
        "turn.start",
        "tool.call",
        "task.created",
        "tool.result",
        "message",
        "turn.end",
    ]
    assert types.index("delta") < types.index("tool.call")  # text before a call reaches clients first
    call = next(f for f in frames if f["type"] == "tool.call")
    assert call["call_id"] == "call_1" and call["name"] == "add_task"
    assert call["arguments"] == {"title": "Walk the dog", "description": "before 9"}
    task = next(f for f in frames if f["type"] == "task.created")["task"]
    assert task["title"] == "Walk the dog" and task["description"] == "before 9"
    result = next(f for f in frames if f["type"] == "tool.result")
    assert result["call_id"] == "call_1" and result["result"]["task_id"] == task["id"]

    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert text == "Sure. 'Walk the dog' is on your list."
    reply, end = frames[-2], frames[-1]
    assert reply["message"]["content"] == text and reply["message"]["status"] == "done"
    assert end["status"] == "done" and end["message_id"] == reply["message"]["id"]


async def test_ws_error_mid_stream_fails_the_turn(server: LiveServer, user: AppUser, model: FakeOpenAIServer) -> None:
    model.queue(Stream(Text("Let me "), Text("check"), StreamError("model crashed")))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("what is on my list?")
        end = await ws.receive("turn.end")
    reply = next(f for f in ws.log if f["type"] == "message" and f["message"]["role"] == "assistant")
    assert end["status"] == "failed" and "model crashed" in end["reason"]
    assert reply["message"]["content"] == "Let me check" and reply["message"]["status"] == "failed"


async def test_ws_unfinished_reply_fails_the_turn(server: LiveServer, user: AppUser, model: FakeOpenAIServer) -> None:
    # A stream that ends without a finish reason is not a complete reply, however normal its end looks.
    model.queue(Stream(Text("You have "), Text("three"), Truncate()))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("how many tasks do I have?")
        end = await ws.receive("turn.end")
    reply = next(f for f in ws.log if f["type"] == "message" and f["message"]["role"] == "assistant")
    assert end["status"] == "failed" and end["reason"] == "The model server ended the reply before finishing it"
    assert reply["message"]["content"] == "You have three" and reply["message"]["status"] == "failed"


async def test_ws_cancel_closes_the_model_stream(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient, model: FakeOpenAIServer
) -> None:
    model.queue(Stream(Text("Let me think"), Hold()))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("plan my week")
        ack = await ws.receive("ack")
        await ws.receive("delta")
        await ws.send({"type": "cancel", "turn_id": ack["turn_id"]})
        end = await ws.receive("turn.end")
    assert end["status"] == "cancelled"
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)  # the request to the model was closed
    last = (await messages_of(client, user, ack["conversation_id"]))[-1]
    assert (last["content"], last["status"]) == ("Let me think", "cancelled")

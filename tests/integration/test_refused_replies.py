"""What the database cannot store must cost only the turn it belongs to: NUL from a model, a reply the database refuses.

The real app on the embedded default and on PostgreSQL + Redis, the assistant on the fake
OpenAI-compatible server. PostgreSQL's `text` refuses U+0000; the agent replaces it by U+FFFD
(`server/assistant/output.py`), and a reply refused for any other reason ends its own turn only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from server.app import create_app
from server.chat.turns import SAVE_FAILED_REASON, Turn, _Finish, _finish_item
from tests.contract.test_turn_stores import accept_item
from tests.fakes.openai_server import ErrorStatus, FakeOpenAIServer, Finish, Pause, Stream, Text, text_reply, tool_reply
from tests.support import services
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import QUIET, TIMEOUT, wait_until
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

NUL, REPLACEMENT = "\x00", "\ufffd"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module", params=["embedded", "production"])
def stack(request: pytest.FixtureRequest, redis_prefix: str) -> dict[str, Any]:
    """The embedded default, or Redis (the database: `server` makes one of its own)."""
    if request.param == "production":
        return {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": f"{redis_prefix}-refused"}
    return {}


@pytest.fixture(scope="module")
async def server(
    stack: dict[str, Any], fake: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """This module's app on each stack, with the assistant on the fake model server (named like the
    shared fixture, so `client`, `user` and `make_user` use it). Its database is its own: a test
    here ends every other worker's turns."""
    async with contextlib.AsyncExitStack() as cleanup:
        if stack:
            database = await services.create_migrated_database("refused")
            cleanup.push_async_callback(database.drop)
            url = database.url
        else:
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('refused') / 'app.db'}"
        settings = make_settings(
            **stack,
            database_url=url,
            assistant_provider="openai",
            llm_base_url=fake.base_url,
            llm_model="fake-model",
            llm_api_key="sk-test",
            llm_timeout=TIMEOUT,
            llm_max_retries=0,
            worker_heartbeat=0.1,  # checkpoints and retries of unsaved replies come round quickly
        )
        yield await cleanup.enter_async_context(serve_in_process(create_app(settings)))


@pytest.fixture
def model(fake: FakeOpenAIServer) -> FakeOpenAIServer:
    fake.reset()
    return fake


async def rows(live: LiveServer, sql: str, **params: object) -> list[tuple[Any, ...]]:
    async with live.runtime.engine.connect() as connection:
        return [tuple(row) for row in (await connection.execute(text(sql), params)).all()]


async def replies_of(live: LiveServer, user_id: int) -> list[tuple[str, str]]:
    found = await rows(
        live, "SELECT content, status FROM messages WHERE user_id = :u AND role = 'assistant' ORDER BY id", u=user_id
    )
    return [(content, status) for content, status in found]


async def test_a_reply_with_nul_is_stored_and_sent_with_a_replacement_and_another_users_turn_is_unharmed(
    server: LiveServer, make_user: MakeUser, model: FakeOpenAIServer
) -> None:
    poisoned, other = await make_user(), await make_user()
    model.queue(Stream(Text("Zero\x00byte"), Pause(QUIET), Text(" reply"), Finish("stop")))
    async with (
        await WSClient.open(server.ws_url, poisoned.token) as first,
        await WSClient.open(server.ws_url, other.token) as second,
    ):
        await first.chat("say something odd")
        await first.receive("delta")  # its request took the scripted reply; the other's is next
        model.queue(text_reply("A clean reply."))
        await second.chat("say something plain")
        clean_end = await second.receive("turn.end")
        odd_frames = await first.until("turn.end")
    assert clean_end["status"] == "done"
    assert odd_frames[-1]["status"] == "done"
    streamed = "".join(f["text"] for f in first.log if f["type"] == "delta")
    assert streamed == f"Zero{REPLACEMENT}byte reply"
    reply = next(f for f in first.log if f["type"] == "message" and f["message"]["role"] == "assistant")
    assert reply["message"]["content"] == streamed
    assert await replies_of(server, poisoned.id) == [(streamed, "done")]
    assert await replies_of(server, other.id) == [("A clean reply.", "done")]


async def test_tool_call_arguments_with_nul_are_replaced(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient, model: FakeOpenAIServer
) -> None:
    model.queue(tool_reply(("call_1", "add_task", {"title": "Buy\x00milk", "tags\x00": ["x"]})), text_reply("Added."))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("add it")
        frames = await ws.until("turn.end")
    call = next(f for f in frames if f["type"] == "tool.call")
    assert call["arguments"] == {"title": f"Buy{REPLACEMENT}milk", f"tags{REPLACEMENT}": ["x"]}
    result = next(f for f in frames if f["type"] == "tool.result")["result"]
    assert result["error"] == "invalid_arguments" and NUL not in str(result)  # the stray key is refused, cleanly
    assert frames[-1]["status"] == "done"
    stored = await rows(server, "SELECT tool_call FROM messages WHERE user_id = :u AND role = 'tool'", u=user.id)
    assert len(stored) == 1 and NUL not in str(stored[0][0])
    # The same call with only the title: the task is stored with the replacement.
    model.queue(tool_reply(("call_2", "add_task", {"title": "Buy\x00milk"})), text_reply("Added."))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("add it again")
        created = await ws.receive("task.created")
        await ws.receive("turn.end")
    assert created["task"]["title"] == f"Buy{REPLACEMENT}milk"
    tasks = (await client.get(user.url("/tasks"), headers=user.headers)).json()["data"]
    assert [t["title"] for t in tasks] == [f"Buy{REPLACEMENT}milk"]


async def test_a_failure_reason_with_nul_is_replaced(
    server: LiveServer, user: AppUser, model: FakeOpenAIServer
) -> None:
    model.queue(ErrorStatus(400, "bad\x00request"))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("anything")
        end = await ws.receive("turn.end")
    assert end["status"] == "failed" and end["reason"].endswith(f"bad{REPLACEMENT}request")
    logged = await rows(server, "SELECT frame FROM events WHERE user_id = :u AND type = 'turn.end'", u=user.id)
    assert len(logged) == 1 and "\\u0000" not in logged[0][0] and REPLACEMENT in logged[0][0]


async def test_the_checkpoint_of_a_reply_with_nul_is_saved_with_the_lease(
    server: LiveServer, user: AppUser, model: FakeOpenAIServer
) -> None:
    model.queue(Stream(Text("half\x00"), Pause(TIMEOUT), Text(" never")))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("take your time")
        ack = await ws.receive("ack")
        await ws.receive("delta")

        async def checkpointed() -> bool:
            found = await rows(server, "SELECT partial_reply FROM turns WHERE turn_id = :t", t=ack["turn_id"])
            return found == [(f"half{REPLACEMENT}",)]

        await wait_until(checkpointed)  # after CHECKPOINT_AFTER, with a heartbeat
        beat = await rows(server, "SELECT heartbeat_at FROM workers WHERE id = :w", w=server.runtime.leases.worker_id)
        await ws.send({"type": "cancel", "turn_id": ack["turn_id"]})
        end = await ws.receive("turn.end")
    assert end["status"] == "cancelled"
    assert await replies_of(server, user.id) == [(f"half{REPLACEMENT}", "cancelled")]
    assert len(beat) == 1  # the lease is still this worker's


# --- a reply the database refuses ------------------------------------------------------------


async def running_turn(live: LiveServer, user: AppUser, reply: str) -> Turn:
    """A turn accepted by the store for this worker, as the registry holds it when its reply is done."""
    [accepted] = await live.runtime.store.accept(
        [accept_item(user.id, None)], worker_id=live.runtime.leases.worker_id, max_concurrent=3
    )
    assert accepted.conversation_id is not None and accepted.turn_id is not None
    return Turn(
        turn_id=accepted.turn_id,
        user_id=user.id,
        conversation_id=accepted.conversation_id,
        message="hello",
        history=[],
        reply=[reply],
    )


async def plant_event(live: LiveServer, user: AppUser) -> None:
    """Take the seq the user's next write would take: that write is then refused (on every database)."""
    async with live.runtime.engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO events (user_id, seq, type, frame, created_at) "
                "SELECT id, last_seq + 1, 'message', '{}', :t FROM users WHERE id = :u"
            ),
            {"u": user.id, "t": datetime.now(UTC)},
        )


async def unplant_event(live: LiveServer, user: AppUser) -> None:
    async with live.runtime.engine.begin() as connection:
        await connection.execute(text("DELETE FROM events WHERE user_id = :u AND frame = '{}'"), {"u": user.id})


async def is_running(live: LiveServer, turn: Turn) -> bool:
    return bool(await rows(live, "SELECT 1 FROM turns WHERE turn_id = :t", t=turn.turn_id))


async def test_a_refused_reply_ends_its_turn_as_failed_and_frees_the_conversation(
    server: LiveServer, user: AppUser
) -> None:
    turn = await running_turn(server, user, "the reply")
    turns = server.runtime.turns
    await plant_event(server, user)
    finishing = turns._finish(turn, tail=[])
    # Refused with its status, then as failed with its text, then without: all three take the planted seq.
    await finishing
    assert turn.turn_id in turns._unfinished and await is_running(server, turn)
    await unplant_event(server, user)
    await wait_until(lambda: turn.turn_id not in turns._unfinished)  # the lease's retry saved it
    assert not await is_running(server, turn)
    assert (turn.status, turn.reason) == ("failed", SAVE_FAILED_REASON)
    assert await replies_of(server, user.id) == [("", "failed")]  # the last fallback is what was left to write


@pytest.mark.parametrize("stack", ["production"], indirect=True)  # SQLite's text holds NUL
async def test_a_reply_with_nul_that_reached_the_store_ends_failed_with_its_text_replaced(
    server: LiveServer, user: AppUser
) -> None:
    turn = await running_turn(server, user, "a\x00b")  # as if it had come past the agent
    await server.runtime.turns._finish(turn, tail=[])
    assert (turn.status, turn.reason) == ("failed", SAVE_FAILED_REASON)
    assert not await is_running(server, turn)
    assert await replies_of(server, user.id) == [(f"a{REPLACEMENT}b", "failed")]


async def test_retrying_unsaved_replies_skips_past_a_refused_one(server: LiveServer, make_user: MakeUser) -> None:
    blocked, waiting = await make_user(), await make_user()
    first = await running_turn(server, blocked, "refused")
    second = await running_turn(server, waiting, "saved on retry")
    await plant_event(server, blocked)
    turns = server.runtime.turns
    # As `_finish` leaves replies it could not save; the refused one first, so that it would block the other.
    turns._unfinished[first.turn_id] = _Finish(first, _finish_item(first, "refused", "done", None), [])
    turns._unfinished[second.turn_id] = _Finish(second, _finish_item(second, "saved on retry", "done", None), [])
    try:
        await wait_until(lambda: second.turn_id not in turns._unfinished)
        assert not await is_running(server, second)
        assert await replies_of(server, waiting.id) == [("saved on retry", "done")]
        assert first.turn_id in turns._unfinished and await is_running(server, first)
    finally:
        await unplant_event(server, blocked)
    await wait_until(lambda: first.turn_id not in turns._unfinished)  # once the cause is gone, it is saved too
    assert await replies_of(server, blocked.id) == [("refused", "done")]


async def test_a_turn_the_sweep_cannot_end_does_not_keep_it_from_ending_the_others(
    server: LiveServer, make_user: MakeUser
) -> None:
    blocked, other = await make_user(), await make_user()
    dead = "lost-host:1:deadbeef"
    store = server.runtime.store
    await store.register_worker(dead)
    [stuck] = await store.accept([accept_item(blocked.id, None)], worker_id=dead, max_concurrent=3)
    [orphan] = await store.accept([accept_item(other.id, None)], worker_id=dead, max_concurrent=3)
    await plant_event(server, blocked)
    try:
        assert await server.runtime.leases.sweep(lease=-1) == 1  # as if its lease had run out
        assert [status for _, status in await replies_of(server, other.id)] == ["interrupted"]
        assert await rows(server, "SELECT 1 FROM turns WHERE turn_id = :t", t=stuck.turn_id) == [(1,)]
    finally:
        await unplant_event(server, blocked)
    assert await server.runtime.leases.sweep(lease=-1) == 1
    assert not await rows(server, "SELECT 1 FROM turns WHERE worker_id = :w", w=dead)
    assert orphan.turn_id is not None


@pytest.mark.parametrize("stack", ["production"], indirect=True)  # SQLite's text holds NUL
async def test_a_refused_checkpoint_does_not_stop_the_lease_renewal(server: LiveServer, user: AppUser) -> None:
    turn = await running_turn(server, user, "checkpoint \x00")  # as if it had come past the agent
    turn.started -= 60  # running long enough to be checkpointed
    turns, leases = server.runtime.turns, server.runtime.leases
    turns._turns[turn.turn_id] = turn
    try:
        before = await rows(server, "SELECT heartbeat_at FROM workers WHERE id = :w", w=leases.worker_id)
        turn.checkpointed = 0  # whatever the lease loop did meanwhile: there is text to checkpoint
        await leases.renew()  # does not raise: the refusal is logged, the lease renewed
        after = await rows(server, "SELECT heartbeat_at FROM workers WHERE id = :w", w=leases.worker_id)
        assert after[0][0] > before[0][0]
        assert await rows(server, "SELECT partial_reply FROM turns WHERE turn_id = :t", t=turn.turn_id) == [(None,)]
    finally:
        del turns._turns[turn.turn_id]
    await turns._finish(turn, tail=[])  # free the conversation

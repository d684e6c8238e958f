"""The WebSocket protocol on both stacks: auth, every frame, every error, over real sockets."""

from __future__ import annotations

import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.live import LiveServer
from tests.support.timing import wait_until
from tests.support.tokens import access_token
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient, seqs

LONG = "x" * 3000
"""A message whose echo streams for well over a second: time to cancel or interrupt it."""


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("via", ["header", "frame"])
async def test_hello_after_auth(server: LiveServer, user: AppUser, via: str) -> None:
    async with await WSClient.open(server.ws_url, user.token, via=via) as ws:
        hello = ws.hello
    assert hello["protocol"] == 1 and hello["user_id"] == user.id
    assert hello["last_seq"] == 0 and len(hello["connection_id"]) == 16
    assert hello["expires_at"] > time.time()


@pytest.mark.parametrize(
    ("via", "token"),
    [("header", "not-a-jwt"), ("frame", "not-a-jwt"), ("header", ""), ("frame", "")],
    ids=["bad-header", "bad-frame", "empty-header", "empty-frame"],
)
async def test_bad_token_closes_4401(server: LiveServer, via: str, token: str) -> None:
    if via == "header":
        authorization = f"Bearer {token}".strip()
        ws = await WSClient.open(server.ws_url, None, headers={"Authorization": authorization}, expect_hello=False)
    else:
        ws = await WSClient.open(server.ws_url, None, expect_hello=False)
        await ws.send({"type": "auth", "token": token})
    code, reason = await ws.closed()
    assert code == 4401 and reason


async def test_no_auth_frame_in_time_closes_4401(server: LiveServer) -> None:
    ws = await WSClient.open(server.ws_url, None, expect_hello=False)
    code, reason = await ws.closed()
    assert code == 4401 and "timed out" in reason


async def test_first_frame_must_be_auth(server: LiveServer) -> None:
    ws = await WSClient.open(server.ws_url, None, expect_hello=False)
    await ws.send({"type": "ping"})
    assert (await ws.closed())[0] == 4401


async def test_token_in_query_string_is_refused(server: LiveServer, user: AppUser) -> None:
    ws = await WSClient.open(f"{server.ws_url}?token={user.token}", None, expect_hello=False)
    code, reason = await ws.closed()
    assert code == 4401 and "query string" in reason


async def test_foreign_origin_is_refused_at_handshake(server: LiveServer, user: AppUser) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await WSClient.open(server.ws_url, user.token, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    same_origin = f"http://127.0.0.1:{server.port}"
    async with await WSClient.open(server.ws_url, user.token, via="frame", origin=same_origin) as ws:
        assert ws.hello["user_id"] == user.id


async def test_expired_token_closes_4401_unless_refreshed(server: LiveServer, user: AppUser) -> None:
    short = access_token(user.id, user.session_id, seconds_left=1)
    async with await WSClient.open(server.ws_url, short) as ws:
        code, reason = await ws.closed()
    assert code == 4401 and "expired" in reason

    short = access_token(user.id, user.session_id, seconds_left=2)
    async with await WSClient.open(server.ws_url, short) as ws:
        await ws.send({"type": "auth.refresh", "token": user.token})
        refreshed = await ws.receive("auth.refreshed")
        assert refreshed["expires_at"] > time.time() + 60
        await ws.expect_nothing(timeout=3)  # outlives the first token
        await ws.send({"type": "ping", "id": 1})
        assert (await ws.receive("pong"))["id"] == 1


async def test_refresh_with_another_users_token_is_refused(
    server: LiveServer, user: AppUser, make_user: MakeUser
) -> None:
    other = await make_user()
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "auth.refresh", "token": other.token})
        error = await ws.receive("error")
        assert error["code"] == "unauthorized"
        await ws.send({"type": "auth", "token": user.token})
        assert (await ws.receive("error"))["code"] == "unauthorized"


# --- bad input never closes the socket -----------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"no": "type"}', "unknown_type"),
        ('{"type": "chat", "message": "hi"}', "invalid"),
        ('{"type": "chat", "message": "", "client_msg_id": "a"}', "invalid"),
        ('{"type": "chat", "message": "   ", "client_msg_id": "a"}', "invalid"),
        ('{"type": "chat", "message": "hi", "client_msg_id": "has spaces"}', "invalid"),
        ('{"type": "chat", "message": "hi", "client_msg_id": "a", "conversation_id": "x"}', "invalid"),
        ('{"type": "resume", "after_seq": -1}', "invalid"),
        ('{"type": "cancel"}', "invalid"),
    ],
    ids=[
        "malformed",
        "not-object",
        "unknown-type",
        "no-type",
        "missing-field",
        "empty-message",
        "blank-message",
        "bad-client-msg-id",
        "bad-conversation-id",
        "negative-seq",
        "cancel-without-turn",
    ],
)
async def test_bad_frames_get_error_frames(server: LiveServer, user: AppUser, frame: str, code: str) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send(frame)
        error = await ws.receive("error")
        assert error["code"] == code and error["detail"]
        await ws.send({"type": "ping", "id": "still-open"})
        assert (await ws.receive("pong"))["id"] == "still-open"


async def test_oversized_frames_and_messages(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send('{"type": "ping", "pad": "' + "x" * 1_000_000 + '"}')  # 1 MB frame
        assert (await ws.receive("error"))["code"] == "too_large"
        await ws.chat("y" * 10_001, client_msg_id="too-long")
        error = await ws.receive("error")
        assert error == {"type": "error", "code": "too_large", "detail": error["detail"], "ref": "too-long"}
        await ws.send(b"\x00\x01binary")
        assert (await ws.receive("error"))["code"] == "bad_json"
        await ws.send({"type": "ping"})
        await ws.receive("pong")


async def test_rate_limit_answers_with_errors_not_a_close(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        for n in range(120):
            await ws.send({"type": "ping", "id": n})
        limited = await ws.receive("error", code="rate_limited")
        assert limited["detail"]
        await ws.expect_nothing("hello", timeout=1.5)  # let the bucket refill
        await ws.send({"type": "ping", "id": "after"})
        await ws.receive("pong", id="after")


# --- chat turns ------------------------------------------------------------------------------


async def test_chat_turn_frames_in_order(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        client_msg_id = await ws.chat("hello there")
        frames = await ws.until("turn.end")
    types = [f["type"] for f in frames]
    assert types[0] == "ack"
    ack = frames[0]
    assert ack["client_msg_id"] == client_msg_id and ack["seq"] == 1
    user_message, turn_start = frames[1], frames[2]
    assert user_message["type"] == "message" and user_message["seq"] == ack["seq"]
    assert user_message["message"]["id"] == ack["message_id"]
    assert user_message["message"]["role"] == "user" and user_message["message"]["content"] == "hello there"
    assert turn_start == {
        "type": "turn.start",
        "turn_id": ack["turn_id"],
        "conversation_id": ack["conversation_id"],
        "seq": 2,
    }
    deltas = [f for f in frames if f["type"] == "delta"]
    assert deltas and all(d["turn_id"] == ack["turn_id"] for d in deltas)
    text = ""
    for delta in deltas:
        assert delta["offset"] == len(text)
        text += delta["text"]
    assert text == "Echo: hello there"
    reply, end = frames[-2], frames[-1]
    assert reply["type"] == "message" and reply["message"]["role"] == "assistant"
    assert reply["message"]["content"] == text and reply["message"]["status"] == "done"
    assert end["status"] == "done" and end["message_id"] == reply["message"]["id"]
    assert seqs(frames) == [1, 2, 3, 4]


async def test_turns_continue_a_conversation(server: LiveServer, user: AppUser, client: httpx.AsyncClient) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("first")
        ack = await ws.receive("ack")
        await ws.receive("turn.end")
        await ws.chat("second", conversation_id=ack["conversation_id"])
        second = await ws.receive("ack")
        await ws.receive("turn.end")
    assert second["conversation_id"] == ack["conversation_id"]
    history = await client.get(user.url(f"/conversations/{ack['conversation_id']}/messages"), headers=user.headers)
    assert [(m["role"], m["content"]) for m in history.json()["data"]] == [
        ("user", "first"),
        ("assistant", "Echo: first"),
        ("user", "second"),
        ("assistant", "Echo: second"),
    ]


async def test_same_client_msg_id_gets_same_ack_and_one_turn(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    async with await WSClient.open(server.ws_url, user.token) as a, await WSClient.open(server.ws_url, user.token) as b:
        await a.chat("only once", client_msg_id="dup-1")
        await b.chat("only once", client_msg_id="dup-1")
        first = await a.receive("ack")
        second = await b.receive("ack")
        assert first == second
        # b's copy may have won the race: then the whole turn can reach `a` before its own ack.
        await a.seen("turn.end")
        await a.chat("only once", client_msg_id="dup-1")  # a late retry, after the turn ended
        assert await a.receive("ack") == first
        await a.expect_nothing("turn.start")
    starts = [f for f in a.log if f["type"] == "turn.start"]
    assert len(starts) == 1
    history = await client.get(user.url(f"/conversations/{first['conversation_id']}/messages"), headers=user.headers)
    assert [m["role"] for m in history.json()["data"]] == ["user", "assistant"]


async def test_second_chat_while_a_turn_runs_is_busy(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat(LONG)
        ack = await ws.receive("ack")
        await ws.chat("me too", conversation_id=ack["conversation_id"], client_msg_id="second")
        busy = await ws.receive("error")
        assert busy["code"] == "busy" and busy["ref"] == "second"
        await ws.receive("turn.end", turn_id=ack["turn_id"])
        await ws.chat("now me", conversation_id=ack["conversation_id"], client_msg_id="second")
        assert (await ws.receive("ack"))["client_msg_id"] == "second"  # nothing of the refused one was kept


async def test_cancel_stops_a_turn_and_keeps_the_partial_reply(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat(LONG)
        ack = await ws.receive("ack")
        await ws.receive("delta")
        await ws.send({"type": "cancel", "turn_id": ack["turn_id"]})
        end = await ws.receive("turn.end")
        reply = next(f for f in ws.log if f["type"] == "message" and f["message"]["role"] == "assistant")
    assert end["status"] == "cancelled"
    assert reply["message"]["status"] == "cancelled" and reply["message"]["id"] == end["message_id"]
    partial = reply["message"]["content"]
    assert partial.startswith("Echo: ") and len(partial) < len("Echo: " + LONG)
    history = await client.get(user.url(f"/conversations/{ack['conversation_id']}/messages"), headers=user.headers)
    assert history.json()["data"][-1]["content"] == partial


async def test_cancel_of_unknown_or_foreign_turn_is_not_found(
    server: LiveServer, user: AppUser, make_user: MakeUser
) -> None:
    other = await make_user()
    async with (
        await WSClient.open(server.ws_url, user.token) as ws,
        await WSClient.open(server.ws_url, other.token) as intruder,
    ):
        await ws.chat(LONG)
        ack = await ws.receive("ack")
        await intruder.send({"type": "cancel", "turn_id": ack["turn_id"]})
        assert (await intruder.receive("error"))["code"] == "not_found"
        await intruder.send({"type": "cancel", "turn_id": "0" * 32})
        assert (await intruder.receive("error"))["code"] == "not_found"
        end = await ws.receive("turn.end")
        assert end["status"] == "done"  # the intruder's cancel did nothing


async def test_foreign_and_missing_conversations_look_the_same(
    server: LiveServer, user: AppUser, make_user: MakeUser
) -> None:
    other = await make_user()
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("mine")
        ack = await ws.receive("ack")
        await ws.receive("turn.end")
    async with await WSClient.open(server.ws_url, other.token) as intruder:
        await intruder.chat("let me in", conversation_id=ack["conversation_id"], client_msg_id="x1")
        foreign = await intruder.receive("error")
        await intruder.chat("let me in", conversation_id=999_999_999, client_msg_id="x2")
        missing = await intruder.receive("error")
    assert foreign["code"] == missing["code"] == "not_found"
    assert foreign["detail"] == missing["detail"]


# --- fan-out, events and isolation -------------------------------------------------------------


async def test_every_socket_of_the_user_sees_the_turn(server: LiveServer, user: AppUser, make_user: MakeUser) -> None:
    other = await make_user()
    async with (
        await WSClient.open(server.ws_url, user.token) as a,
        await WSClient.open(server.ws_url, user.token, via="frame") as b,
        await WSClient.open(server.ws_url, other.token) as stranger,
    ):
        await a.chat("fan me out")
        ack = await a.receive("ack")
        seen = await b.until("turn.end")
        await stranger.expect_nothing()
    assert [f["type"] for f in seen if f["type"] != "delta"] == ["message", "turn.start", "message", "turn.end"]
    assert seen[0]["message"]["id"] == ack["message_id"]
    assert "".join(f["text"] for f in seen if f["type"] == "delta") == "Echo: fan me out"
    assert all(f.get("turn_id", ack["turn_id"]) == ack["turn_id"] for f in seen)


async def test_task_changes_over_rest_reach_sockets(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        created = (await client.post(user.url("/tasks"), json={"title": "live"}, headers=user.headers)).json()
        event = await ws.receive("task.created")
        assert event["task"] == created and event["seq"] == ws.hello["last_seq"] + 1
        await client.patch(user.url(f"/tasks/{created['id']}/complete"), headers=user.headers)
        assert (await ws.receive("task.updated"))["task"]["completed"] is True
        await client.delete(user.url(f"/tasks/{created['id']}"), headers=user.headers)
        assert (await ws.receive("task.deleted"))["task"]["id"] == created["id"]
    assert seqs(ws.log) == [1, 2, 3]


async def test_conversation_deletion_is_an_event(server: LiveServer, user: AppUser, client: httpx.AsyncClient) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("soon gone")
        ack = await ws.receive("ack")
        await ws.receive("turn.end")
        await client.delete(user.url(f"/conversations/{ack['conversation_id']}"), headers=user.headers)
        event = await ws.receive("conversation.deleted")
    assert event["conversation_id"] == ack["conversation_id"]


async def test_ping_pong(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "ping", "id": 7})
        assert await ws.receive("pong") == {"type": "pong", "id": 7}


async def test_a_message_sent_on_turn_end_is_never_busy(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("first")
        conversation_id = (await ws.receive("ack"))["conversation_id"]
        for n in range(15):
            await ws.receive("turn.end")
            await ws.chat(f"right away {n}", conversation_id=conversation_id)  # the lock is already free
            await ws.receive("ack")
        await ws.receive("turn.end")
    assert [f for f in ws.log if f["type"] == "error"] == []


async def test_a_late_retry_gets_its_ack_even_while_another_turn_runs(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("first", client_msg_id="early")
        first = await ws.receive("ack")
        await ws.receive("turn.end", turn_id=first["turn_id"])
        await ws.chat(LONG, conversation_id=first["conversation_id"], client_msg_id="long-one")
        await ws.receive("ack")
        # The retry of an accepted message is answered with its ack, not `busy`.
        await ws.chat("first", conversation_id=first["conversation_id"], client_msg_id="early")
        assert await ws.receive("ack", client_msg_id="early") == first


async def test_odd_after_seq_values_are_ignored(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(f"{server.ws_url}?after_seq=%C2%B2", user.token) as ws:
        await ws.send({"type": "ping", "id": 1})
        await ws.receive("pong")


async def test_frames_ready_together_go_out_in_one_write(server: LiveServer, user: AppUser) -> None:
    """A turn's last frames (delta, message, turn.end) reach the socket in one transport write."""
    writes: list[bytes] = []
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await wait_until(lambda: server.runtime.hub.sockets_of(user.id) == 1)
        [connection] = server.runtime.hub._subscribers[user.id]
        frames = connection._frames  # type: ignore[attr-defined]
        assert frames.batches  # uvicorn's websockets-sansio protocol, as `python -m server` runs it
        transport = frames._protocol.transport
        original = transport.write

        def recording(data: bytes) -> None:
            writes.append(bytes(data))
            original(data)

        transport.write = recording
        try:
            await ws.chat("short")
            await ws.receive("turn.end")
        finally:
            transport.write = original
    # The reply, its turn.end (and the last delta) are framed apart but written together.
    assert max(map(frames_in, writes)) >= 2, [frames_in(w) for w in writes]


def frames_in(data: bytes) -> int:
    """How many WebSocket frames one server write holds (RFC 6455 section 5.2; servers do not mask)."""
    count, at = 0, 0
    while at < len(data):
        length, at = data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2]), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8]), at + 8
        at += length
        count += 1
    return count

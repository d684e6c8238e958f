"""Gap-free delivery: resume after a disconnect, gaps filled from the event log, resync when impossible."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import col

from server import protocol
from server.db.models import Event
from server.db.outbox import transaction
from tests.support.live import LiveServer
from tests.support.users import AppUser
from tests.support.wsclient import WSClient, seqs

LONG = "z" * 3000


def persisted(frames: list[dict[str, object]]) -> list[dict[str, object]]:
    return [f for f in frames if "seq" in f and f["type"] != "ack"]


@pytest.mark.parametrize("how", ["resume-frame", "auth-frame", "query"])
async def test_resume_replays_exactly_what_was_missed(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient, how: str
) -> None:
    async with await WSClient.open(server.ws_url, user.token) as a:
        await a.chat("before the drop")
        await a.receive("turn.end")
    seen = max(seqs(a.log))

    async with await WSClient.open(server.ws_url, user.token) as b:  # meanwhile, on another device
        await b.chat("while you were away")
        await b.receive("turn.end")
        await client.post(user.url("/tasks"), json={"title": "missed task"}, headers=user.headers)
        await b.receive("task.created")
    missed = persisted(b.log)

    if how == "resume-frame":
        again = await WSClient.open(server.ws_url, user.token)
        await again.send({"type": "resume", "after_seq": seen})
    elif how == "auth-frame":
        again = await WSClient.open(server.ws_url, user.token, via="frame", after_seq=seen)
    else:
        again = await WSClient.open(f"{server.ws_url}?after_seq={seen}", user.token)
    async with again:
        assert again.hello["last_seq"] == seen + len(missed)
        replayed = [await again.next() for _ in missed]
        await again.expect_nothing()
    assert replayed == missed  # every event, in order, verbatim
    assert seqs(replayed) == list(range(seen + 1, seen + len(missed) + 1))


async def test_disconnect_mid_turn_then_resume(server: LiveServer, user: AppUser) -> None:
    first = await WSClient.open(server.ws_url, user.token)
    await first.chat(LONG)
    ack = await first.receive("ack")
    await first.receive("delta")
    await first.close()  # the tab closes; the turn goes on
    seen = max(seqs(first.log))

    async with await WSClient.open(server.ws_url, user.token) as second:
        await second.send({"type": "resume", "after_seq": seen})
        await second.receive("turn.end", turn_id=ack["turn_id"])
        await second.expect_nothing()
    received = seqs(first.log) + seqs(second.log)
    assert received == list(range(1, max(received) + 1))  # every persisted event once, in order
    reply = next(f for f in second.log if f["type"] == "message")
    assert reply["message"]["content"] == "Echo: " + LONG and reply["message"]["status"] == "done"


async def test_a_closed_tab_does_not_stop_the_turn(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    ws = await WSClient.open(server.ws_url, user.token)
    await ws.chat("y" * 500)
    ack = await ws.receive("ack")
    await ws.close()
    async with await WSClient.open(server.ws_url, user.token) as later:
        await later.send({"type": "resume", "after_seq": ack["seq"]})
        end = await later.receive("turn.end")
    assert end["status"] == "done"
    history = await client.get(user.url(f"/conversations/{ack['conversation_id']}/messages"), headers=user.headers)
    assert history.json()["data"][-1]["content"] == "Echo: " + "y" * 500


async def test_resume_ahead_of_the_server_asks_for_resync(server: LiveServer, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "resume", "after_seq": 10_000})
        resync = await ws.receive("resync_required")
    assert resync["last_seq"] == ws.hello["last_seq"]


async def test_pruned_events_ask_for_resync(server: LiveServer, user: AppUser, client: httpx.AsyncClient) -> None:
    for title in ("one", "two", "three"):
        await client.post(user.url("/tasks"), json={"title": title}, headers=user.headers)
    async with server.runtime.db() as session, session.begin():
        await session.exec(delete(Event).where(col(Event.user_id) == user.id, col(Event.seq) <= 2))
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "resume", "after_seq": 0})
        resync = await ws.receive("resync_required")
        assert resync["last_seq"] == 3
        await ws.send({"type": "resume", "after_seq": 2})  # what is still logged replays fine
        assert (await ws.receive("task.created"))["seq"] == 3


async def test_a_gap_in_live_events_is_filled_from_the_log(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    runtime = server.runtime
    async with await WSClient.open(server.ws_url, user.token) as ws:
        # An event that is committed but never published: as if its publisher died after commit.
        async with transaction(runtime.db, None) as outbox:
            outbox.record(user.id, protocol.conversation_deleted(await outbox.reserve(user.id), 424242))
        await client.post(user.url("/tasks"), json={"title": "after the gap"}, headers=user.headers)
        first = await ws.next()
        second = await ws.next()
    assert (first["type"], first["seq"]) == ("conversation.deleted", 1)
    assert (second["type"], second["seq"]) == ("task.created", 2)


async def test_broker_reconnect_replays_what_sockets_missed(server: LiveServer, user: AppUser) -> None:
    runtime = server.runtime
    async with await WSClient.open(server.ws_url, user.token) as ws:
        async with transaction(runtime.db, None) as outbox:
            outbox.record(user.id, protocol.conversation_deleted(await outbox.reserve(user.id), 4242))
        await ws.expect_nothing()
        runtime.hub.on_reconnected()  # what the broker calls once it is back
        event = await ws.receive("conversation.deleted")
    assert event["conversation_id"] == 4242 and event["seq"] == 1


async def test_resume_never_resends_what_this_socket_already_got(
    server: LiveServer, user: AppUser, client: httpx.AsyncClient
) -> None:
    await client.post(user.url("/tasks"), json={"title": "before"}, headers=user.headers)  # seq 1
    async with await WSClient.open(server.ws_url, user.token) as ws:
        assert ws.hello["last_seq"] == 1
        await client.post(user.url("/tasks"), json={"title": "live"}, headers=user.headers)  # seq 2, live
        assert (await ws.receive("task.created"))["seq"] == 2
        await ws.send({"type": "resume", "after_seq": 0})  # the client had seen nothing
        replayed = await ws.receive("task.created")
        await ws.expect_nothing()
    assert replayed["seq"] == 1 and replayed["task"]["title"] == "before"
    assert seqs(ws.log) == [2, 1]  # seq 2 once: what the socket already sent is not replayed

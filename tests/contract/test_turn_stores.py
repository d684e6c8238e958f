"""One contract, every TurnStore: what accept and finish write and answer, busy/duplicate/limits, leases.

Run against the asyncpg store on PostgreSQL and the SQLAlchemy store on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import asyncpg
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from server import protocol
from server.chat.writer import TurnWriter
from server.db import migrate
from server.db.engine import is_refused, is_unavailable
from server.db.turnstore.base import Accepted, AcceptItem, AcceptStatus, Finished, FinishItem, ToolItem, TurnStore
from server.db.turnstore.postgres import PostgresTurnStore, asyncpg_dsn
from server.db.turnstore.sql import SqlTurnStore
from tests.support import services

WORKER = "worker-a"


@dataclass
class Stores:
    engine: AsyncEngine
    store: TurnStore
    url: str


ON_POSTGRES = ["asyncpg-postgres", "sqlalchemy-postgres"]


@pytest.fixture(scope="module", params=["asyncpg-postgres", "sqlalchemy-sqlite", "sqlalchemy-postgres"])
async def stores(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stores]:
    kind, backend = request.param.split("-")
    database = None
    if backend == "postgres":
        database = await services.create_postgres_database(f"turnstore_{kind}")
        url = database.url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('turnstore') / 'turns.db'}"
    engine = create_async_engine(url)
    await migrate.upgrade(engine)
    store: TurnStore
    if kind == "asyncpg":
        store = await PostgresTurnStore.open(url, pool_size=4, history_limit=30)
    else:
        store = SqlTurnStore(engine, history_limit=30)
    try:
        yield Stores(engine=engine, store=store, url=url)
    finally:
        await store.close()
        await engine.dispose()
        if database is not None:
            await database.drop()


async def new_user(engine: AsyncEngine, timezone: str = "UTC") -> int:
    async with engine.begin() as connection:
        result = await connection.execute(
            text(
                "INSERT INTO users (email, password_hash, created_at, timezone) VALUES (:e, 'x', :t, :z) RETURNING id"
            ),
            {"e": f"{secrets.token_hex(6)}@example.com", "t": datetime.now(UTC), "z": timezone},
        )
        return int(result.scalar_one())


def accept_item(
    user_id: int, conversation_id: int | None, content: str = "hello", client_msg_id: str | None = None
) -> AcceptItem:
    now = datetime.now(UTC)
    turn_id = secrets.token_hex(16)
    client_msg_id = client_msg_id or secrets.token_hex(8)
    return AcceptItem(
        user_id=user_id,
        conversation_id=conversation_id,
        title=content[:80],
        client_msg_id=client_msg_id,
        turn_id=turn_id,
        content=content,
        created_at=now,
        message_frame=protocol.message_event_text(
            role="user", content=content, created_at=now, turn_id=turn_id, client_msg_id=client_msg_id
        ),
        start_frame=protocol.turn_start_text(turn_id),
    )


def finish_item(
    user_id: int, conversation_id: int, turn_id: str, content: str = "reply", status: str = "done"
) -> FinishItem:
    now = datetime.now(UTC)
    return FinishItem(
        user_id=user_id,
        conversation_id=conversation_id,
        turn_id=turn_id,
        content=content,
        status=status,
        created_at=now,
        message_frame=protocol.message_event_text(
            role="assistant", content=content, created_at=now, turn_id=turn_id, status=status
        ),
        end_frame=protocol.turn_end_text(turn_id, conversation_id, status),  # type: ignore[arg-type]
    )


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> object:
    async with engine.connect() as connection:
        return (await connection.execute(text(sql), params)).scalar()


async def logged(engine: AsyncEngine, user_id: int) -> list[tuple[int, str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT seq, type, frame FROM events WHERE user_id = :u ORDER BY seq"), {"u": user_id}
        )
        return [(int(seq), kind, frame) for seq, kind, frame in rows.all()]


async def test_accept_then_finish_writes_the_turn_and_its_events(stores: Stores) -> None:
    user = await new_user(stores.engine)
    item = accept_item(user, None, "first words")
    [accepted] = await stores.store.accept([item], worker_id=WORKER, max_concurrent=3)
    assert accepted.status is AcceptStatus.ACCEPTED and accepted.seq == 1 and accepted.history == []
    assert accepted.conversation_id is not None and accepted.message_id is not None
    message, start = (orjson.loads(event.text) for event in accepted.events)
    assert [event.seq for event in accepted.events] == [1, 2]
    assert (
        message["type"] == "message" and message["seq"] == 1 and message["conversation_id"] == accepted.conversation_id
    )
    assert message["message"]["id"] == accepted.message_id and message["message"]["content"] == "first words"
    assert message["message"]["client_msg_id"] == item.client_msg_id and message["message"]["role"] == "user"
    assert start == {
        "type": "turn.start",
        "seq": 2,
        "turn_id": item.turn_id,
        "conversation_id": accepted.conversation_id,
    }
    assert [text for _, _, text in await logged(stores.engine, user)] == [event.text for event in accepted.events]
    assert await scalar(stores.engine, "SELECT running_turns FROM users WHERE id = :u", u=user) == 1
    assert await scalar(stores.engine, "SELECT worker_id FROM turns WHERE turn_id = :t", t=item.turn_id) == WORKER

    [finished] = await stores.store.finish([finish_item(user, accepted.conversation_id, item.turn_id, "the reply")])
    assert finished.ended and finished.seq == 3 and finished.message_id is not None
    reply, end = (orjson.loads(event.text) for event in finished.events)
    assert reply["message"] == {
        "id": finished.message_id,
        "conversation_id": accepted.conversation_id,
        "role": "assistant",
        "content": "the reply",
        "status": "done",
        "turn_id": item.turn_id,
        "created_at": reply["message"]["created_at"],
    }
    assert end["type"] == "turn.end" and end["seq"] == 4 and end["message_id"] == finished.message_id
    assert [seq for seq, _, _ in await logged(stores.engine, user)] == [1, 2, 3, 4]
    assert await scalar(stores.engine, "SELECT count(*) FROM turns WHERE turn_id = :t", t=item.turn_id) == 0
    assert await scalar(stores.engine, "SELECT running_turns FROM users WHERE id = :u", u=user) == 0
    assert await scalar(stores.engine, "SELECT last_seq FROM users WHERE id = :u", u=user) == 4
    # Finishing again (a late duplicate) writes nothing.
    [again] = await stores.store.finish([finish_item(user, accepted.conversation_id, item.turn_id)])
    assert not again.ended and again.events == []
    assert await scalar(stores.engine, "SELECT last_seq FROM users WHERE id = :u", u=user) == 4


def tool_items(user_id: int, conversation_id: int, turn_id: str, result: object) -> tuple[ToolItem, ToolItem]:
    """A call's `tool.call` and `tool.result` items, as the running turn makes them."""
    now = datetime.now(UTC)
    arguments = {"title": 'Buy "milk"'}
    result_json = orjson.dumps(result).decode()
    call = ToolItem(
        user_id=user_id,
        turn_id=turn_id,
        kind="tool.call",
        created_at=now,
        frame=protocol.tool_call_text(turn_id, conversation_id, "call_1", "add_task", arguments),
    )
    done = ToolItem(
        user_id=user_id,
        turn_id=turn_id,
        kind="tool.result",
        created_at=now,
        frame=protocol.tool_result_text(turn_id, conversation_id, "call_1", result_json),
        content=result_json,
        tool_call={"id": "call_1", "name": "add_task", "arguments": arguments, "result": result},
    )
    return call, done


async def test_a_tool_call_and_its_result_take_the_next_seqs_and_the_result_is_a_tool_message(stores: Stores) -> None:
    user = await new_user(stores.engine)
    [accepted] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=3)
    assert accepted.conversation_id is not None and accepted.turn_id is not None
    result = {"task_id": 9, "status": "created", "title": 'Buy "milk"'}
    call, done = tool_items(user, accepted.conversation_id, accepted.turn_id, result)

    called = await stores.store.record_tool(call)
    assert called is not None and called.seq == 3
    assert orjson.loads(called.text) == {
        "type": "tool.call",
        "seq": 3,
        "turn_id": accepted.turn_id,
        "conversation_id": accepted.conversation_id,
        "call_id": "call_1",
        "name": "add_task",
        "arguments": {"title": 'Buy "milk"'},
    }
    stored = await stores.store.record_tool(done)
    assert stored is not None and stored.seq == 4
    assert orjson.loads(stored.text) == {
        "type": "tool.result",
        "seq": 4,
        "turn_id": accepted.turn_id,
        "conversation_id": accepted.conversation_id,
        "call_id": "call_1",
        "result": result,
    }
    # The log holds the very text that was returned for publishing, with its type.
    assert (await logged(stores.engine, user))[2:] == [(3, "tool.call", called.text), (4, "tool.result", stored.text)]
    assert await scalar(stores.engine, "SELECT last_seq FROM users WHERE id = :u", u=user) == 4
    # Only the result is a message: in the history the model sees, and in the turn's reply over REST.
    [row] = (await stores.store.history(accepted.conversation_id, limit=30))[1:]
    assert (row.role, orjson.loads(row.content)) == ("tool", result)
    assert row.tool_call == {"id": "call_1", "name": "add_task", "arguments": {"title": 'Buy "milk"'}, "result": result}
    [finished] = await stores.store.finish([finish_item(user, accepted.conversation_id, accepted.turn_id)])
    assert finished.ended and finished.seq == 5
    assert await stores.store.turn_reply(accepted.turn_id) == (
        "done",
        "reply",
        [{"name": "add_task", "arguments": {"title": 'Buy "milk"'}, "result": result}],
    )


async def test_a_tool_of_a_turn_that_is_over_writes_nothing(stores: Stores) -> None:
    user = await new_user(stores.engine)
    [accepted] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=3)
    assert accepted.conversation_id is not None and accepted.turn_id is not None
    await stores.store.finish([finish_item(user, accepted.conversation_id, accepted.turn_id)])
    call, done = tool_items(user, accepted.conversation_id, accepted.turn_id, {"ok": True})
    assert await stores.store.record_tool(call) is None
    assert await stores.store.record_tool(done) is None
    stranger = await new_user(stores.engine)  # nor may anyone else record into a turn of theirs
    [other] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=3)
    assert other.conversation_id is not None and other.turn_id is not None
    call, _ = tool_items(stranger, other.conversation_id, other.turn_id, {"ok": True})
    assert await stores.store.record_tool(call) is None
    assert [seq for seq, _, _ in await logged(stores.engine, user)] == [1, 2, 3, 4, 5, 6]
    assert await logged(stores.engine, stranger) == []
    assert (
        await scalar(stores.engine, "SELECT count(*) FROM messages WHERE role = 'tool' AND user_id = :u", u=user) == 0
    )


async def test_a_running_turn_makes_its_conversation_busy_and_nothing_is_written(stores: Stores) -> None:
    user = await new_user(stores.engine)
    [first] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=3)
    assert first.conversation_id is not None
    [busy] = await stores.store.accept([accept_item(user, first.conversation_id)], worker_id=WORKER, max_concurrent=3)
    assert busy.status is AcceptStatus.BUSY and busy.events == []
    assert await scalar(stores.engine, "SELECT last_seq FROM users WHERE id = :u", u=user) == 2
    assert await scalar(stores.engine, "SELECT count(*) FROM messages WHERE user_id = :u", u=user) == 1


async def test_a_retried_client_msg_id_answers_with_the_original(stores: Stores) -> None:
    user = await new_user(stores.engine)
    item = accept_item(user, None, client_msg_id="same-key")
    [first] = await stores.store.accept([item], worker_id=WORKER, max_concurrent=3)
    for conversation in (None, first.conversation_id):
        [retry] = await stores.store.accept(
            [accept_item(user, conversation, client_msg_id="same-key")], worker_id=WORKER, max_concurrent=3
        )
        assert retry.status is AcceptStatus.DUPLICATE
        assert (retry.conversation_id, retry.message_id, retry.seq, retry.turn_id) == (
            first.conversation_id,
            first.message_id,
            first.seq,
            item.turn_id,
        )
    assert await scalar(stores.engine, "SELECT count(*) FROM conversations WHERE user_id = :u", u=user) == 1


async def test_another_users_conversation_is_not_found_and_untouched(stores: Stores) -> None:
    owner, intruder = await new_user(stores.engine), await new_user(stores.engine)
    [mine] = await stores.store.accept([accept_item(owner, None)], worker_id=WORKER, max_concurrent=3)
    assert mine.conversation_id is not None
    [theirs] = await stores.store.accept(
        [accept_item(intruder, mine.conversation_id)], worker_id=WORKER, max_concurrent=3
    )
    assert theirs.status is AcceptStatus.NOT_FOUND
    [missing] = await stores.store.accept([accept_item(owner, 2**31 - 1)], worker_id=WORKER, max_concurrent=3)
    assert missing.status is AcceptStatus.NOT_FOUND
    assert await scalar(stores.engine, "SELECT last_seq FROM users WHERE id = :u", u=intruder) == 0


async def test_concurrent_turns_per_user_are_limited(stores: Stores) -> None:
    user = await new_user(stores.engine)
    [one] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=1)
    [two] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=1)
    assert one.status is AcceptStatus.ACCEPTED and two.status is AcceptStatus.LIMITED
    assert one.conversation_id is not None and one.turn_id is not None
    await stores.store.finish([finish_item(user, one.conversation_id, one.turn_id)])
    [three] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=1)
    assert three.status is AcceptStatus.ACCEPTED


async def test_an_accepted_turn_knows_its_users_time_zone(stores: Stores) -> None:
    """Read with the user's locked row, in the same statement: the assistant resolves "tomorrow" in it."""
    zones = ["Europe/Berlin", "America/New_York", "UTC"]
    users = [await new_user(stores.engine, zone) for zone in zones]
    results = await stores.store.accept([accept_item(u, None) for u in users], worker_id=WORKER, max_concurrent=3)
    assert [(r.status, r.timezone) for r in results] == [(AcceptStatus.ACCEPTED, zone) for zone in zones]


async def test_a_batch_of_users_in_one_call(stores: Stores) -> None:
    users = [await new_user(stores.engine) for _ in range(5)]
    results = await stores.store.accept(
        [accept_item(u, None, f"hi {u}") for u in users], worker_id=WORKER, max_concurrent=3
    )
    assert [r.status for r in results] == [AcceptStatus.ACCEPTED] * 5
    assert len({r.conversation_id for r in results}) == 5
    finished = await stores.store.finish(
        [
            finish_item(u, r.conversation_id or 0, r.turn_id or "", f"bye {u}")
            for u, r in zip(users, results, strict=True)
        ]
    )
    assert all(f.ended and f.seq == 3 for f in finished)
    for user, result in zip(users, finished, strict=True):
        assert orjson.loads(result.events[0].text)["message"]["content"] == f"bye {user}"


async def test_one_round_accepts_for_one_user_and_finishes_for_another(stores: Stores) -> None:
    """A round holding both kinds of write (one statement on PostgreSQL), and the same user in neither twice."""
    starter, finisher = await new_user(stores.engine), await new_user(stores.engine)
    [running] = await stores.store.accept([accept_item(finisher, None, "first")], worker_id=WORKER, max_concurrent=3)
    assert running.conversation_id is not None and running.turn_id is not None
    accepted, finished = await stores.store.commit(
        [accept_item(starter, None, "hello there")],
        [finish_item(finisher, running.conversation_id, running.turn_id, "the reply")],
        worker_id=WORKER,
        max_concurrent=3,
    )
    assert [a.status for a in accepted] == [AcceptStatus.ACCEPTED]
    assert [(a.seq, [e.seq for e in a.events]) for a in accepted] == [(1, [1, 2])]
    assert [(f.ended, f.user_id, f.seq) for f in finished] == [(True, finisher, 3)]
    assert [kind for _, kind, _ in await logged(stores.engine, starter)] == ["message", "turn.start"]
    kinds = [kind for _, kind, _ in await logged(stores.engine, finisher)]
    assert kinds == ["message", "turn.start", "message", "turn.end"]
    assert await replies(stores.engine, finisher) == [("the reply", "done")]
    # The finished turn freed its conversation; the new one holds its own.
    [again] = await stores.store.accept(
        [accept_item(finisher, running.conversation_id, "next")], worker_id=WORKER, max_concurrent=3
    )
    assert again.status is AcceptStatus.ACCEPTED
    [busy] = await stores.store.accept(
        [accept_item(starter, accepted[0].conversation_id, "too soon")], worker_id=WORKER, max_concurrent=3
    )
    assert busy.status is AcceptStatus.BUSY


async def test_history_is_the_conversation_before_the_new_message(stores: Stores) -> None:
    user = await new_user(stores.engine)
    [first] = await stores.store.accept([accept_item(user, None, "one")], worker_id=WORKER, max_concurrent=3)
    assert first.conversation_id is not None and first.turn_id is not None
    await stores.store.finish([finish_item(user, first.conversation_id, first.turn_id, "two")])
    [second] = await stores.store.accept(
        [accept_item(user, first.conversation_id, "three")], worker_id=WORKER, max_concurrent=3
    )
    assert second.history is not None
    assert [(row.role, row.content, row.status) for row in second.history] == [
        ("user", "one", None),
        ("assistant", "two", "done"),
    ]
    rows = await stores.store.history(first.conversation_id, limit=2)
    assert [row.content for row in rows] == ["two", "three"]


async def test_leases_orphans_and_checkpoints(stores: Stores) -> None:
    user = await new_user(stores.engine)
    dead, alive = f"dead-{secrets.token_hex(4)}", f"alive-{secrets.token_hex(4)}"
    await stores.store.register_worker(dead)
    await stores.store.register_worker(alive)
    [turn] = await stores.store.accept([accept_item(user, None)], worker_id=dead, max_concurrent=3)
    assert turn.turn_id is not None
    assert await stores.store.heartbeat(dead)
    await stores.store.checkpoint(dead, {turn.turn_id: "half a rep"})
    fresh = await stores.store.orphans(alive, lease_seconds=60, limit=100)
    assert turn.turn_id not in {o.turn_id for o in fresh}  # its worker's lease is fresh
    orphans = await stores.store.orphans(alive, lease_seconds=-1, limit=100)  # every other worker's
    mine = [o for o in orphans if o.turn_id == turn.turn_id]
    assert len(mine) == 1 and mine[0].partial_reply == "half a rep" and mine[0].worker_id == dead
    assert mine[0].last_heard is not None and abs((datetime.now(UTC) - mine[0].last_heard).total_seconds()) < 60
    await stores.store.unregister_worker(dead)  # gone: its turns are orphans at once
    gone = {o.turn_id: o for o in await stores.store.orphans(alive, lease_seconds=60, limit=100)}
    assert turn.turn_id in gone and gone[turn.turn_id].last_heard is None
    assert not await stores.store.heartbeat(dead)  # the lease is lost: the worker must know


@pytest.mark.parametrize("stores", ON_POSTGRES, indirect=True)  # SQLite: one process, nothing to race
async def test_concurrent_writers_of_one_user_keep_seqs_gap_free(stores: Stores) -> None:
    """Two stores (two workers) race turns in several conversations of one user."""
    user = await new_user(stores.engine)
    other = await PostgresTurnStore.open(stores.url, pool_size=4, history_limit=30)
    try:
        [a] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=50)
        [b] = await other.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=50)
        assert a.conversation_id and a.turn_id and b.conversation_id and b.turn_id
        rounds = 20

        async def drive(store: TurnStore, conversation_id: int, turn_id: str) -> int:
            accepted_turns = 0
            for _ in range(rounds):
                for item in tool_items(user, conversation_id, turn_id, {"ok": True}):
                    assert await store.record_tool(item) is not None
                [done] = await store.finish([finish_item(user, conversation_id, turn_id)])
                assert done.ended
                while True:
                    [next_] = await store.accept(
                        [accept_item(user, conversation_id)], worker_id=WORKER, max_concurrent=50
                    )
                    if next_.status is AcceptStatus.ACCEPTED:
                        break
                    assert next_.status is AcceptStatus.RETRY, next_.status
                assert next_.turn_id is not None
                turn_id = next_.turn_id
                accepted_turns += 1
            await store.finish([finish_item(user, conversation_id, turn_id)])
            return accepted_turns

        counts = await asyncio.gather(
            drive(stores.store, a.conversation_id, a.turn_id), drive(other, b.conversation_id, b.turn_id)
        )
    finally:
        await other.close()
    assert list(counts) == [rounds, rounds]
    seqs = [seq for seq, _, _ in await logged(stores.engine, user)]
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free and duplicate-free
    # Per conversation: the first accept; each round's tool call, result, finish and accept; the last finish.
    assert len(seqs) == 2 * (2 + 6 * rounds + 2)
    assert await scalar(stores.engine, "SELECT running_turns FROM users WHERE id = :u", u=user) == 0


async def running_turn(stores: Stores, user: int) -> tuple[int, str]:
    [accepted] = await stores.store.accept([accept_item(user, None)], worker_id=WORKER, max_concurrent=3)
    assert accepted.conversation_id is not None and accepted.turn_id is not None
    return accepted.conversation_id, accepted.turn_id


async def replies(engine: AsyncEngine, user_id: int) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT content, status FROM messages WHERE user_id = :u AND role = 'assistant'"), {"u": user_id}
        )
        return [(content, status) for content, status in rows.all()]


async def finish_in_one_round(store: TurnStore, *items: FinishItem) -> list[Finished | BaseException]:
    """Submitted in one event-loop iteration: the writer puts them in one statement."""
    writer = TurnWriter(store, worker_id=WORKER, max_concurrent_turns=3)
    futures = [writer.finish(item, lambda done: done) for item in items]
    outcomes = await asyncio.gather(*futures, return_exceptions=True)
    assert writer.rounds == 1
    return [o if isinstance(o, BaseException) else cast(Finished, o) for o in outcomes]


async def test_a_write_the_database_refuses_fails_alone_in_its_round(stores: Stores) -> None:
    """A user's event log already holds the seq the reply would take: a refusal, on every database."""
    bad, good = await new_user(stores.engine), await new_user(stores.engine)
    bad_conversation, bad_turn = await running_turn(stores, bad)
    good_conversation, good_turn = await running_turn(stores, good)
    async with stores.engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO events (user_id, seq, type, frame, created_at) VALUES (:u, 3, 'message', '{}', :t)"),
            {"u": bad, "t": datetime.now(UTC)},
        )
    refused, ended = await finish_in_one_round(
        stores.store,
        finish_item(bad, bad_conversation, bad_turn, "lost"),
        finish_item(good, good_conversation, good_turn, "kept"),
    )
    assert isinstance(refused, Exception) and is_refused(refused), refused
    assert isinstance(ended, Finished) and ended.ended
    assert await replies(stores.engine, good) == [("kept", "done")]
    assert await replies(stores.engine, bad) == []  # nothing of the refused write, and its turn still runs
    assert await scalar(stores.engine, "SELECT count(*) FROM turns WHERE turn_id = :t", t=bad_turn) == 1


@pytest.mark.parametrize("stores", ON_POSTGRES, indirect=True)  # SQLite's text holds NUL
async def test_a_reply_with_nul_is_refused_alone(stores: Stores) -> None:
    """PostgreSQL's text cannot hold U+0000 (the agent replaces it; this is the store's side of it)."""
    bad, good = await new_user(stores.engine), await new_user(stores.engine)
    bad_conversation, bad_turn = await running_turn(stores, bad)
    good_conversation, good_turn = await running_turn(stores, good)
    poisoned = finish_item(bad, bad_conversation, bad_turn, "a\x00b")
    clean = finish_item(good, good_conversation, good_turn, "clean")
    with pytest.raises(Exception) as one_statement:  # each driver has its own class for it
        await stores.store.finish([poisoned, clean])
    assert is_refused(one_statement.value)
    assert await replies(stores.engine, good) == []  # one statement: the clean reply went with it
    refused, ended = await finish_in_one_round(stores.store, poisoned, clean)
    assert isinstance(refused, Exception) and is_refused(refused)
    assert isinstance(ended, Finished) and ended.ended
    assert await replies(stores.engine, good) == [("clean", "done")]


@pytest.mark.parametrize("stores", ON_POSTGRES, indirect=True)
async def test_a_refused_checkpoint_leaves_the_lease_renewable(stores: Stores) -> None:
    user = await new_user(stores.engine)
    worker = f"w-{secrets.token_hex(4)}"
    await stores.store.register_worker(worker)
    [turn] = await stores.store.accept([accept_item(user, None)], worker_id=worker, max_concurrent=3)
    assert turn.turn_id is not None
    await stores.store.checkpoint(worker, {turn.turn_id: "fine so far"})
    with pytest.raises(Exception) as refused:
        await stores.store.checkpoint(worker, {turn.turn_id: "then \x00"})
    assert is_refused(refused.value)
    before = await scalar(stores.engine, "SELECT heartbeat_at FROM workers WHERE id = :w", w=worker)
    assert await stores.store.heartbeat(worker)
    after = await scalar(stores.engine, "SELECT heartbeat_at FROM workers WHERE id = :w", w=worker)
    assert isinstance(before, datetime) and isinstance(after, datetime) and after > before
    partial = await scalar(stores.engine, "SELECT partial_reply FROM turns WHERE turn_id = :t", t=turn.turn_id)
    assert partial == "fine so far"


@pytest.mark.parametrize("stores", ["asyncpg-postgres"], indirect=True)
async def test_a_round_stuck_on_a_row_lock_is_cancelled_and_the_next_round_goes_on(stores: Stores) -> None:
    """One round in flight per worker: a round waiting on a lock held elsewhere is bounded by the
    statement timeout, ends as "unavailable" (the client retries), and the writes queued behind it run."""
    stuck_user, other_user = await new_user(stores.engine), await new_user(stores.engine)
    store = await PostgresTurnStore.open(stores.url, pool_size=2, history_limit=30, statement_timeout=0.5)
    writer = TurnWriter(store, worker_id=WORKER, max_concurrent_turns=3)
    holder = await asyncpg.connect(asyncpg_dsn(stores.url))
    try:
        async with holder.transaction():
            await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", stuck_user)
            stuck = writer.accept(accept_item(stuck_user, None), lambda result: result)
            await until_a_turn_statement_waits_on_a_lock(holder)
            queued = writer.accept(accept_item(other_user, None), lambda result: result)
            with pytest.raises(asyncpg.QueryCanceledError) as cancelled:
                async with asyncio.timeout(10):  # without the statement timeout: TimeoutError here
                    await stuck
            assert is_unavailable(cancelled.value)
            result = await queued
        assert cast(Accepted, result).status is AcceptStatus.ACCEPTED
    finally:
        await holder.close()
        await store.close()
    assert await logged(stores.engine, stuck_user) == []


async def until_a_turn_statement_waits_on_a_lock(connection: asyncpg.Connection) -> None:
    async with asyncio.timeout(10):
        while not await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'todochat-turns' AND wait_event_type = 'Lock'"
        ):
            await asyncio.sleep(0.01)

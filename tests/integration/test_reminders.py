"""Reminders on both stacks, on a clock the test moves: fired once when due, live to every socket and from the
log to a socket that resumes; snoozed and dismissed over the socket, REST and the tools; claimed exactly once
by racing transactions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, update
from sqlmodel import col, func, select

from server.app import create_app
from server.db import reminders
from server.db.models import Event, User
from server.db.outbox import Outbox
from tests.support.clock import ManualClock
from tests.support.live import LiveServer, serve_in_process
from tests.support.mcpclient import open_mcp, value
from tests.support.settings import make_settings
from tests.support.timing import TIMEOUT, wait_until
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient

Task = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def user(clocked_server: LiveServer) -> AppUser:
    return await signup(clocked_server.base_url)


@pytest.fixture
async def http(clocked_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=clocked_server.base_url, timeout=TIMEOUT) as client:
        yield client


async def create(http: httpx.AsyncClient, user: AppUser, title: str, **fields: Any) -> Task:
    response = await http.post(user.url("/tasks"), json={"title": title, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    task: Task = response.json()
    return task


async def get(http: httpx.AsyncClient, user: AppUser, task: Task) -> Task:
    response = await http.get(user.url(f"/tasks/{task['id']}"), headers=user.headers)
    got: Task = response.json()
    return got


async def reminder_events(clocked_server: LiveServer, user: AppUser) -> int:
    async with clocked_server.runtime.reads() as session:
        count = await session.scalar(
            select(func.count()).select_from(Event).where(col(Event.user_id) == user.id, col(Event.type) == "reminder")
        )
    return int(count or 0)


async def test_a_due_reminder_reaches_every_socket_once(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    due = clock.now() + timedelta(minutes=10)
    async with (
        await WSClient.open(clocked_server.ws_url, user.token) as a,
        await WSClient.open(clocked_server.ws_url, user.token) as b,
    ):
        task = await create(http, user, "Call the dentist", due_at=iso(due + timedelta(minutes=30)), remind_at=iso(due))
        await a.receive("task.created")
        clock.advance(minutes=9, seconds=59)
        await a.expect_nothing("reminder")
        clock.advance(seconds=1)
        fired = await a.receive("reminder")
        assert await b.receive("reminder") == fired
        assert fired["remind_at"] == iso(due)
        assert fired["task"]["id"] == task["id"] and fired["task"]["title"] == "Call the dentist"
        assert fired["task"]["remind_at"] is None and fired["task"]["due_at"] == task["due_at"]
        assert fired["seq"] == a.hello["last_seq"] + 2  # after task.created
        clock.advance(hours=1)
        await a.expect_nothing("reminder")
    assert (await get(http, user, task))["remind_at"] is None
    assert await reminder_events(clocked_server, user) == 1


async def test_an_offline_user_gets_the_reminder_on_resume(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(http, user, "Take the bins out", remind_at=iso(clock.now() + timedelta(minutes=5)))
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        seen = ws.hello["last_seq"]
    clock.advance(minutes=5)  # no socket open: it fires all the same, into the log

    async def fired() -> bool:
        return (await get(http, user, task))["remind_at"] is None

    await wait_until(fired)
    async with await WSClient.open(clocked_server.ws_url, user.token, via="frame", after_seq=seen) as ws:
        replayed = await ws.receive("reminder")
        assert replayed["seq"] == seen + 1 and replayed["task"]["id"] == task["id"]
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        assert ws.hello["last_seq"] == seen + 1
        await ws.send({"type": "resume", "after_seq": seen})
        assert (await ws.receive("reminder"))["seq"] == seen + 1
        await ws.expect_nothing("reminder")


async def test_snooze_over_the_socket_reminds_again(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(http, user, "Stretch", remind_at=iso(clock.now() + timedelta(minutes=1)))
    async with (
        await WSClient.open(clocked_server.ws_url, user.token) as a,
        await WSClient.open(clocked_server.ws_url, user.token) as b,
    ):
        clock.advance(minutes=1)
        await a.receive("reminder")
        await a.send({"type": "reminder.snooze", "task_id": task["id"], "minutes": 10})
        snoozed = await b.receive("task.updated")  # every device learns the reminder moved
        assert snoozed["task"]["remind_at"] == iso(clock.now() + timedelta(minutes=10))
        assert (await a.receive("task.updated")) == snoozed
        clock.advance(minutes=9)
        await b.expect_nothing("reminder")
        clock.advance(minutes=1)
        again = await b.receive("reminder")
        assert again["task"]["id"] == task["id"] and again["remind_at"] == snoozed["task"]["remind_at"]
    assert await reminder_events(clocked_server, user) == 2


@pytest.mark.parametrize(
    ("frame", "code", "says"),
    [
        ({"type": "reminder.snooze", "task_id": 1, "minutes": 0}, "invalid", "minutes"),
        ({"type": "reminder.snooze", "task_id": 1, "minutes": 10081}, "invalid", "minutes"),
        ({"type": "reminder.snooze", "task_id": 1, "minutes": "10"}, "invalid", "minutes"),
        ({"type": "reminder.snooze", "minutes": 10}, "invalid", "task_id"),
        ({"type": "reminder.snooze", "task_id": 0, "minutes": 10}, "invalid", "task_id"),
        ({"type": "reminder.dismiss", "task_id": "seven"}, "invalid", "task_id"),
        ({"type": "reminder.snooze", "task_id": 2147483647, "minutes": 10}, "not_found", "Task not found"),
        ({"type": "reminder.dismiss", "task_id": 2147483647}, "not_found", "Task not found"),
    ],
    ids=["zero", "too-long", "string", "no-task", "task-zero", "task-string", "missing-snooze", "missing-dismiss"],
)
async def test_bad_snooze_and_dismiss_frames_get_an_error_frame(
    clocked_server: LiveServer, user: AppUser, frame: dict[str, Any], code: str, says: str
) -> None:
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        await ws.send(frame)
        error = await ws.receive("error")
        assert error["code"] == code and says in error["detail"]
        await ws.send({"type": "ping", "id": 1})
        assert (await ws.receive("pong"))["id"] == 1  # the socket carries on


async def test_another_users_task_cannot_be_snoozed_or_dismissed(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(http, user, "Mine", remind_at=iso(clock.now() + timedelta(hours=1)))
    intruder = await signup(clocked_server.base_url)
    async with await WSClient.open(clocked_server.ws_url, intruder.token) as ws:
        for frame in (
            {"type": "reminder.snooze", "task_id": task["id"], "minutes": 5},
            {"type": "reminder.dismiss", "task_id": task["id"]},
        ):
            await ws.send(frame)
            assert (await ws.receive("error"))["code"] == "not_found"
    assert await get(http, user, task) == task


async def test_a_completed_task_cannot_be_snoozed_over_the_socket(
    clocked_server: LiveServer, http: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(http, user, "Done already")
    await http.patch(user.url(f"/tasks/{task['id']}"), json={"completed": True}, headers=user.headers)
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        await ws.send({"type": "reminder.snooze", "task_id": task["id"], "minutes": 5})
        error = await ws.receive("error")
        assert error["code"] == "invalid" and "completed task" in error["detail"]


async def test_dismiss_closes_the_reminder_on_every_device(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    fired_task = await create(http, user, "Fired", remind_at=iso(clock.now() + timedelta(minutes=1)))
    pending_task = await create(http, user, "Pending", remind_at=iso(clock.now() + timedelta(minutes=30)))
    async with (
        await WSClient.open(clocked_server.ws_url, user.token) as a,
        await WSClient.open(clocked_server.ws_url, user.token) as b,
    ):
        clock.advance(minutes=1)
        await b.receive("reminder")
        # Dismissing a reminder that already fired changes no field, yet every device hears of it.
        await a.send({"type": "reminder.dismiss", "task_id": fired_task["id"]})
        dismissed = await b.receive("reminder.dismissed")
        assert dismissed["task"]["id"] == fired_task["id"] and dismissed["task"]["remind_at"] is None
        assert await a.receive("reminder.dismissed") == dismissed
        # Dismissing a pending one drops it: it never fires.
        await b.send({"type": "reminder.dismiss", "task_id": pending_task["id"]})
        assert (await a.receive("reminder.dismissed"))["task"]["remind_at"] is None
        await a.expect_nothing("task.updated")  # the dismissal is the one event
        clock.advance(hours=1)
        await a.expect_nothing("reminder")
    assert (await get(http, user, pending_task))["remind_at"] is None


async def test_snooze_and_dismiss_over_rest(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(http, user, "Drink water", remind_at=iso(clock.now() + timedelta(minutes=1)))
    url = user.url(f"/tasks/{task['id']}")
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        clock.advance(minutes=1)
        await ws.receive("reminder")
        snoozed = await http.patch(url, json={"snooze_minutes": 15}, headers=user.headers)
        assert snoozed.json()["remind_at"] == iso(clock.now() + timedelta(minutes=15))
        await ws.receive("task.updated")
        clock.advance(minutes=15)
        await ws.receive("reminder")
        dismissed = await http.patch(url, json={"dismiss_reminder": True}, headers=user.headers)
        assert dismissed.status_code == 200 and dismissed.json()["remind_at"] is None
        await ws.receive("reminder.dismissed")
        # Setting the instant itself works as well (a snooze to a time of one's choosing).
        later = clock.now() + timedelta(hours=2)
        reset = await http.patch(url, json={"remind_at": iso(later)}, headers=user.headers)
        assert reset.json()["remind_at"] == iso(later)
        clock.advance(hours=2)
        assert (await ws.receive("reminder"))["remind_at"] == iso(later)


async def test_snooze_and_dismiss_through_the_tools(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    async with (
        open_mcp(clocked_server.base_url, user.token) as mcp,
        await WSClient.open(clocked_server.ws_url, user.token) as ws,
    ):
        remind = clock.now() + timedelta(minutes=3)
        added = value(await mcp.call_tool("add_task", {"title": "Feed the cat", "remind_at": remind.isoformat()}))
        task_id = added["task_id"]
        clock.advance(minutes=3)
        await ws.receive("reminder")
        snoozed = value(await mcp.call_tool("update_task", {"task_id": task_id, "snooze_minutes": 10}))
        assert snoozed == {"task_id": task_id, "status": "updated", "title": "Feed the cat"}
        assert (await ws.receive("task.updated"))["task"]["remind_at"] == iso(clock.now() + timedelta(minutes=10))
        clock.advance(minutes=10)
        await ws.receive("reminder")
        value(await mcp.call_tool("update_task", {"task_id": task_id, "dismiss_reminder": True}))
        await ws.receive("reminder.dismissed")
        bad = value(await mcp.call_tool("update_task", {"task_id": task_id, "snooze_minutes": 10, "remind_at": None}))
        assert bad["error"] == "invalid_arguments" and "only one of" in bad["message"]
        past = value(await mcp.call_tool("update_task", {"task_id": task_id, "remind_at": "2001-01-01T00:00:00Z"}))
        assert past["error"] == "invalid_arguments" and "in the past" in past["message"]
    [task] = (await http.get(user.url("/tasks"), headers=user.headers)).json()["data"]
    assert task["remind_at"] is None  # the refused calls changed nothing


async def test_changing_or_deleting_a_task_moves_or_drops_its_reminder(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    moved = await create(http, user, "Moved", remind_at=iso(clock.now() + timedelta(minutes=5)))
    gone = await create(http, user, "Gone", remind_at=iso(clock.now() + timedelta(minutes=5)))
    done = await create(http, user, "Done", remind_at=iso(clock.now() + timedelta(minutes=5)))
    later = clock.now() + timedelta(minutes=20)
    await http.patch(user.url(f"/tasks/{moved['id']}"), json={"remind_at": iso(later)}, headers=user.headers)
    await http.delete(user.url(f"/tasks/{gone['id']}"), headers=user.headers)
    await http.patch(user.url(f"/tasks/{done['id']}/complete"), headers=user.headers)
    async with await WSClient.open(clocked_server.ws_url, user.token) as ws:
        clock.advance(minutes=10)
        await ws.expect_nothing("reminder")
        clock.advance(minutes=10)
        fired = await ws.receive("reminder")
        assert fired["task"]["id"] == moved["id"] and fired["remind_at"] == iso(later)
        await ws.expect_nothing("reminder")


# --- the claim, transaction by transaction ------------------------------------------------------


async def pending_reminder(http: httpx.AsyncClient, user: AppUser, clock: ManualClock) -> tuple[Task, datetime]:
    """A task whose reminder is due an hour from the server's clock, and an instant past it to claim at.

    The server's own scheduler goes by its clock, so it leaves this reminder alone while the test
    claims "in the future" by hand.
    """
    task = await create(http, user, "Claimed by hand", remind_at=iso(clock.now() + timedelta(hours=1)))
    return task, clock.now() + timedelta(hours=2)


async def test_a_claim_that_dies_before_commit_leaves_the_reminder_due(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    task, later = await pending_reminder(http, user, clock)
    runtime = clocked_server.runtime

    class Died(Exception):
        pass

    with pytest.raises(Died):
        async with runtime.db() as session, session.begin():
            outbox = Outbox(session)
            claim = await reminders.claim(outbox, now=later, max_users=10_000, max_reminders=10_000)
            assert claim.fired >= 1
            await outbox.write()
            raise Died  # the worker is gone before COMMIT: everything rolls back
    assert (await get(http, user, task))["remind_at"] == task["remind_at"]
    assert await reminder_events(clocked_server, user) == 0
    async with runtime.db() as session, session.begin():
        outbox = Outbox(session)
        assert (await reminders.claim(outbox, now=later, max_users=10_000, max_reminders=10_000)).fired >= 1
        await outbox.write()
    assert await reminder_events(clocked_server, user) == 1
    assert (await get(http, user, task))["remind_at"] is None


async def test_racing_claims_split_the_users_and_fire_once(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, user: AppUser
) -> None:
    runtime = clocked_server.runtime
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("one process on SQLite: its write lock serialises claims (the lock order is the same)")
    other = await signup(clocked_server.base_url)
    _, later = await pending_reminder(http, user, clock)
    await pending_reminder(http, other, clock)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> reminders.Claim:
        async with runtime.db() as session, session.begin():
            outbox = Outbox(session)
            claim = await reminders.claim(outbox, now=later, max_users=1, max_reminders=10_000)
            await outbox.write()
            holding.set()
            await release.wait()  # holds its user's lock, uncommitted
        return claim

    async def second() -> reminders.Claim:
        await holding.wait()
        async with runtime.db() as session, session.begin():
            outbox = Outbox(session)
            claim = await reminders.claim(outbox, now=later, max_users=10_000, max_reminders=10_000)
            await outbox.write()
        release.set()
        return claim

    a, b = await asyncio.wait_for(asyncio.gather(first(), second()), TIMEOUT)
    assert a.users == 1 and b.users >= 1  # the second skipped the first's locked user, took the other
    assert await reminder_events(clocked_server, user) == 1
    assert await reminder_events(clocked_server, other) == 1
    async with runtime.db() as session, session.begin():  # and a claim after both finds nothing of theirs
        outbox = Outbox(session)
        await reminders.claim(outbox, now=later, max_users=10_000, max_reminders=10_000)
        await outbox.write()
    assert await reminder_events(clocked_server, user) == 1
    assert await reminder_events(clocked_server, other) == 1


async def test_the_scheduler_sleeps_until_the_next_reminder_not_the_poll(tmp_path: Path) -> None:
    """On the real clock, with a poll far longer than the wait: the reminder fires when due, neither early nor
    a poll late (setting it over REST woke the scheduler, which then slept exactly until it)."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'poll.db'}", reminder_poll_seconds=60)
    async with serve_in_process(create_app(settings)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        user = await signup(live.base_url)
        async with await WSClient.open(live.ws_url, user.token) as ws:
            due = datetime.now(UTC) + timedelta(seconds=1)
            await create(http, user, "On the dot", remind_at=iso(due))
            fired = await ws.receive("reminder", timeout=TIMEOUT)
            arrived = datetime.now(UTC)
    assert fired["remind_at"] == iso(due)
    assert due <= arrived < due + timedelta(seconds=TIMEOUT / 2)  # long before the 60 s poll


async def test_an_idle_scheduler_takes_no_write_lock(tmp_path: Path) -> None:
    """On SQLite every write transaction holds the database's one write lock: a scheduler that finds
    nothing due must only read, or every worker's polling would queue the writers behind it."""
    clock = ManualClock()
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'idle.db'}")
    async with (
        serve_in_process(create_app(settings, clock=clock)) as live,
        httpx.AsyncClient(base_url=live.base_url, timeout=TIMEOUT) as http,
    ):
        user = await signup(live.base_url)
        await create(http, user, "Later", remind_at=iso(clock.now() + timedelta(hours=1)))
        writes: list[str] = []

        def count_writes(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("BEGIN IMMEDIATE"):
                writes.append(statement)

        scheduler, engine = live.runtime.reminders, live.runtime.engine.sync_engine
        event.listen(engine, "before_cursor_execute", count_writes)
        try:
            assert await scheduler.step() > 0  # not due yet: sleep
            assert writes == []
            clock.advance(hours=1)
            await scheduler.step()
            assert writes, "a due reminder is claimed in a write transaction"
        finally:
            event.remove(engine, "before_cursor_execute", count_writes)
        assert await reminder_events(live, user) == 1


async def test_sqlite_reads_do_not_wait_for_the_writer(tmp_path: Path) -> None:
    """A read session on SQLite begins deferred (WAL: no lock), so it answers while a write transaction
    is open instead of queueing behind it for the busy timeout."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    async with serve_in_process(create_app(settings)) as live:
        await signup(live.base_url)
        runtime = live.runtime
        async with runtime.db() as writer, writer.begin():
            await writer.exec(update(User).values(last_seq=User.last_seq + 1))  # holds the write lock
            async with asyncio.timeout(TIMEOUT / 4), runtime.reads() as reader:  # busy_timeout is 10 s
                assert await reader.scalar(select(func.count()).select_from(User)) == 1

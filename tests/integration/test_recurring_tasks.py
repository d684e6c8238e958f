"""Repeating tasks on both stacks, on a clock the test sets: completing one creates the next occurrence in the
user's zone (across a daylight-saving change, reminder offset kept), atomically and exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.support.clock import ManualClock
from tests.support.live import LiveServer
from tests.support.mcpclient import open_mcp, value
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient

Task = dict[str, Any]
BERLIN = ZoneInfo("Europe/Berlin")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
async def http(clocked_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=clocked_server.base_url, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture
async def berliner(clocked_server: LiveServer, http: httpx.AsyncClient) -> AppUser:
    user = await signup(clocked_server.base_url)
    response = await http.patch("/api/auth/me", json={"timezone": "Europe/Berlin"}, headers=user.headers)
    assert response.status_code == 200
    return user


async def create(http: httpx.AsyncClient, user: AppUser, title: str, **fields: Any) -> Task:
    response = await http.post(user.url("/tasks"), json={"title": title, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    task: Task = response.json()
    return task


async def tasks_of(http: httpx.AsyncClient, user: AppUser) -> list[Task]:
    data: list[Task] = (await http.get(user.url("/tasks"), headers=user.headers)).json()["data"]
    return data


async def complete(http: httpx.AsyncClient, user: AppUser, task: Task) -> httpx.Response:
    return await http.patch(user.url(f"/tasks/{task['id']}"), json={"completed": True}, headers=user.headers)


async def test_the_next_occurrence_keeps_its_local_time_across_a_dst_change(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 3, 22, 6, 0, tzinfo=UTC))  # Monday morning, the week before summer time
    monday_nine = datetime(2027, 3, 22, 9, 0, tzinfo=BERLIN)  # 08:00 UTC
    task = await create(
        http,
        berliner,
        "Water the plants",
        tags=["home"],
        priority="high",
        due_at=monday_nine.isoformat(),
        remind_at=(monday_nine - timedelta(minutes=30)).isoformat(),
        recurrence="FREQ=WEEKLY;BYDAY=MO",
    )
    async with await WSClient.open(clocked_server.ws_url, berliner.token) as ws:
        done = await complete(http, berliner, task)
        assert done.status_code == 200
        assert done.json()["completed"] is True and done.json()["recurrence"] is None  # the series moved on
        assert done.json()["remind_at"] is None  # done: no reminder
        updated = await ws.receive("task.updated")
        created = await ws.receive("task.created")
        assert created["seq"] == updated["seq"] + 1  # one transaction, in order
    following = created["task"]
    assert following["id"] != task["id"] and following["completed"] is False
    assert (following["title"], following["tags"], following["priority"]) == ("Water the plants", ["home"], "high")
    assert following["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    assert following["due_at"] == "2027-03-29T07:00:00Z"  # 09:00 in Berlin in summer time (UTC+2)
    assert following["remind_at"] == "2027-03-29T06:30:00Z"  # still 30 minutes before
    assert [t["id"] for t in await tasks_of(http, berliner)] == [task["id"], following["id"]]


async def test_the_next_occurrences_reminder_fires(
    clocked_server: LiveServer, clock: ManualClock, http: httpx.AsyncClient, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 5, 3, 5, 0, tzinfo=UTC))
    due = datetime(2027, 5, 3, 8, 0, tzinfo=BERLIN)
    task = await create(
        http,
        berliner,
        "Stand-up",
        due_at=due.isoformat(),
        remind_at=(due - timedelta(minutes=10)).isoformat(),
        recurrence="FREQ=DAILY",
    )
    async with await WSClient.open(clocked_server.ws_url, berliner.token) as ws:
        clock.set(due - timedelta(minutes=10))
        first = await ws.receive("reminder")
        assert first["task"]["id"] == task["id"]
        await complete(http, berliner, task)
        following = (await ws.receive("task.created"))["task"]
        clock.set(datetime(2027, 5, 4, 7, 50, tzinfo=BERLIN))
        second = await ws.receive("reminder")
        assert second["task"]["id"] == following["id"] and second["remind_at"] == "2027-05-04T05:50:00Z"


async def test_completing_late_skips_the_missed_occurrences(
    clock: ManualClock, http: httpx.AsyncClient, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 6, 1, 6, 0, tzinfo=UTC))
    task = await create(
        http,
        berliner,
        "Journal",
        due_at=datetime(2027, 6, 1, 21, 0, tzinfo=BERLIN).isoformat(),
        recurrence="FREQ=DAILY",
    )
    clock.set(datetime(2027, 6, 10, 12, 0, tzinfo=UTC))  # nine days late
    await complete(http, berliner, task)
    following = (await tasks_of(http, berliner))[-1]
    assert following["due_at"] == iso(datetime(2027, 6, 10, 21, 0, tzinfo=BERLIN))  # tonight, not overdue
    assert following["remind_at"] is None  # there was no reminder to keep


async def test_two_devices_completing_at_once_make_one_next_occurrence(
    clocked_server: LiveServer, clock: ManualClock, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 7, 1, 6, 0, tzinfo=UTC))
    async with (
        httpx.AsyncClient(base_url=clocked_server.base_url, timeout=TIMEOUT) as phone,
        httpx.AsyncClient(base_url=clocked_server.base_url, timeout=TIMEOUT) as laptop,
        await WSClient.open(clocked_server.ws_url, berliner.token) as ws,
    ):
        series = []
        for day in range(5):
            due = datetime(2027, 7, 1 + day, 18, 0, tzinfo=BERLIN)
            series.append(
                await create(phone, berliner, f"Walk {day}", due_at=due.isoformat(), recurrence="FREQ=WEEKLY")
            )
        for task in series:
            answers = await asyncio.gather(complete(phone, berliner, task), complete(laptop, berliner, task))
            assert [a.status_code for a in answers] == [200, 200]
            assert all(a.json()["completed"] for a in answers)
        originals = {task["id"] for task in series}
        followers: list[Task] = []
        while len(followers) < len(series):
            frame = await ws.receive("task.created")
            if frame["task"]["id"] not in originals:
                followers.append(frame["task"])
        await ws.expect_nothing()
    assert sorted(t["title"] for t in followers) == [f"Walk {day}" for day in range(5)]  # one each
    completions = [f for f in ws.log if f["type"] == "task.updated"]
    assert len(completions) == 5  # the second request of each pair found it done: no event, no occurrence
    assert len(await tasks_of_client(clocked_server, berliner)) == 10


async def tasks_of_client(server: LiveServer, user: AppUser) -> list[Task]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT) as http:
        return await tasks_of(http, user)


async def test_reopening_and_completing_again_does_not_repeat_twice(
    clock: ManualClock, http: httpx.AsyncClient, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 8, 2, 6, 0, tzinfo=UTC))
    task = await create(http, berliner, "Gym", due_at="2027-08-02T16:00:00Z", recurrence="FREQ=WEEKLY;BYDAY=MO,TH")
    await complete(http, berliner, task)
    await http.patch(berliner.url(f"/tasks/{task['id']}"), json={"completed": False}, headers=berliner.headers)
    await complete(http, berliner, task)
    titles = [(t["title"], t["due_at"]) for t in await tasks_of(http, berliner)]
    assert titles == [("Gym", "2027-08-02T16:00:00Z"), ("Gym", "2027-08-05T16:00:00Z")]  # Monday, then Thursday


async def test_complete_task_names_the_next_occurrence_in_the_users_zone(
    clocked_server: LiveServer, clock: ManualClock, berliner: AppUser
) -> None:
    clock.set(datetime(2027, 9, 1, 6, 0, tzinfo=UTC))
    async with open_mcp(clocked_server.base_url, berliner.token) as mcp:
        added = value(
            await mcp.call_tool(
                "add_task",
                {
                    "title": "Pay rent",
                    "due_at": "2027-09-01T10:00:00+02:00",
                    "remind_at": "2027-09-01T09:00:00+02:00",
                    "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
                    "tags": ["Home"],
                },
            )
        )
        assert added == {"task_id": added["task_id"], "status": "created", "title": "Pay rent"}
        done = value(await mcp.call_tool("complete_task", {"task_id": added["task_id"]}))
        assert done["status"] == "completed" and done["task_id"] == added["task_id"]
        assert done["next"] == {
            "task_id": done["next"]["task_id"],
            "title": "Pay rent",
            "priority": "normal",
            "tags": ["home"],
            "due_at": "2027-10-01T10:00:00+02:00",  # the user's wall-clock time, with its offset
            "remind_at": "2027-10-01T09:00:00+02:00",
            "recurrence": "FREQ=MONTHLY;BYMONTHDAY=1",
        }
        again = value(await mcp.call_tool("complete_task", {"task_id": added["task_id"]}))
        assert "next" not in again  # already done: nothing new

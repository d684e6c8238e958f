"""Tasks that know when, over REST on both stacks: the new fields, their 422s, filters, search, sorting, the
user's time zone, and the `task.*` events carrying it all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.live import LiveServer
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

Task = dict[str, Any]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def hours(n: float) -> str:
    return iso(datetime.now(UTC) + timedelta(hours=n))


async def create(client: httpx.AsyncClient, user: AppUser, title: str, **fields: Any) -> Task:
    response = await client.post(user.url("/tasks"), json={"title": title, **fields}, headers=user.headers)
    assert response.status_code == 201, response.text
    task: Task = response.json()
    return task


async def patch(client: httpx.AsyncClient, user: AppUser, task: Task, **fields: Any) -> httpx.Response:
    return await client.patch(user.url(f"/tasks/{task['id']}"), json=fields, headers=user.headers)


async def listed(client: httpx.AsyncClient, user: AppUser, **params: Any) -> list[str]:
    response = await client.get(user.url("/tasks"), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()["data"]]


async def test_a_plain_task_keeps_the_original_shape_and_gains_defaults(
    client: httpx.AsyncClient, user: AppUser
) -> None:
    task = await create(client, user, "Buy milk")
    assert set(task) == {
        *("id", "title", "description", "completed", "created_at", "updated_at"),
        *("priority", "tags", "due_at", "remind_at", "recurrence"),
    }
    assert task["priority"] == "normal" and task["tags"] == []
    assert task["due_at"] is None and task["remind_at"] is None and task["recurrence"] is None


async def test_new_fields_are_normalised_and_read_back(client: httpx.AsyncClient, user: AppUser) -> None:
    remind = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    task = await create(
        client,
        user,
        "Water the plants",
        priority="high",
        tags=[" Work ", "#home", "Big   Project", "WORK"],
        due_at="2030-01-07T09:00:00+01:00",
        remind_at=remind.isoformat(),
        recurrence="rrule:freq=weekly;byday=mo",
    )
    assert task["priority"] == "high"
    assert task["tags"] == ["big-project", "home", "work"]  # trimmed, lower case, '#' dropped, one each
    assert task["due_at"] == "2030-01-07T08:00:00Z"  # stored and returned in UTC
    assert task["remind_at"] == iso(remind)
    assert task["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
    got = await client.get(user.url(f"/tasks/{task['id']}"), headers=user.headers)
    assert got.json() == task


async def test_patch_changes_and_clears_the_new_fields(client: httpx.AsyncClient, user: AppUser) -> None:
    task = await create(client, user, "Report", tags=["work"], due_at=hours(48), recurrence="FREQ=DAILY")
    changed = await patch(client, user, task, priority="low", tags=["home", "Errands"])
    assert changed.status_code == 200, changed.text
    assert changed.json()["priority"] == "low" and changed.json()["tags"] == ["errands", "home"]
    refused = await patch(client, user, task, due_at=None)
    assert refused.status_code == 422 and "needs a due_at" in refused.json()["detail"]
    stopped = await patch(client, user, task, recurrence=None)
    assert stopped.json()["recurrence"] is None
    cleared = await patch(client, user, task, due_at=None, tags=[], title=None, priority=None)
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["due_at"] is None and body["tags"] == []
    assert body["title"] == "Report" and body["priority"] == "low"  # null: no change for what cannot be empty
    reminded = await patch(client, user, task, remind_at=hours(1))
    assert reminded.json()["remind_at"] is not None
    assert (await patch(client, user, task, remind_at=None)).json()["remind_at"] is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"recurrence": "FREQ=HOURLY", "due_at": "2030-01-01T09:00:00Z"}, "FREQ must be one of"),
        ({"recurrence": "FREQ=DAILY;COUNT=5", "due_at": "2030-01-01T09:00:00Z"}, "unsupported part 'COUNT'"),
        ({"recurrence": "every monday", "due_at": "2030-01-01T09:00:00Z"}, "expected NAME=VALUE"),
        ({"recurrence": "FREQ=DAILY"}, "needs a due_at"),
        (
            {"recurrence": "FREQ=MONTHLY;INTERVAL=12;BYMONTHDAY=30", "due_at": "2030-02-01T09:00:00Z"},
            "never repeats",
        ),
        ({"tags": [f"t{n}" for n in range(11)]}, "at most 10"),
        ({"tags": ["x" * 33]}, "1 to 32 characters"),
        ({"tags": ["   "]}, "1 to 32 characters"),
        ({"remind_at": "2020-01-01T09:00:00Z"}, "in the past"),
        ({"due_at": "2030-01-01T09:00:00"}, "timezone"),
        ({"due_at": "tomorrow"}, "datetime"),
        ({"due_at": "0001-01-01T00:00:00Z"}, "between 1970 and 9000"),
        ({"priority": "urgent"}, "'low', 'normal' or 'high'"),
        ({"snooze_minutes": 5}, "Extra inputs are not permitted"),
    ],
    ids=[
        "hourly",
        "count",
        "prose",
        "rule-without-due",
        "never-repeats",
        "eleven-tags",
        "long-tag",
        "blank-tag",
        "reminder-in-the-past",
        "no-offset",
        "not-a-time",
        "year-one",
        "priority",
        "snooze-on-create",
    ],
)
async def test_create_refuses_what_cannot_be_right(
    client: httpx.AsyncClient, user: AppUser, fields: dict[str, Any], says: str
) -> None:
    response = await client.post(user.url("/tasks"), json={"title": "t", **fields}, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid"
    assert says in str(response.json()["detail"])
    assert await listed(client, user) == []  # nothing half-made


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"remind_at": "2031-01-01T00:00:00Z", "snooze_minutes": 5}, "only one of"),
        ({"snooze_minutes": 5, "dismiss_reminder": True}, "only one of"),
        ({"snooze_minutes": 0}, "greater than or equal to 1"),
        ({"snooze_minutes": 7 * 24 * 60 + 1}, "less than or equal to 10080"),
        ({"dismiss_reminder": False}, "Input should be True"),
        ({"completed": True, "remind_at": "2031-01-01T00:00:00Z"}, "completed task cannot have a reminder"),
        ({"tags": [f"t{n}" for n in range(11)]}, "at most 10"),
    ],
    ids=["set-and-snooze", "snooze-and-dismiss", "snooze-zero", "snooze-too-long", "dismiss-false", "done", "tags"],
)
async def test_update_refuses_what_cannot_be_right(
    client: httpx.AsyncClient, user: AppUser, fields: dict[str, Any], says: str
) -> None:
    task = await create(client, user, "Call the dentist")
    response = await patch(client, user, task, **fields)
    assert response.status_code == 422, response.text
    assert says in str(response.json()["detail"])
    got = await client.get(user.url(f"/tasks/{task['id']}"), headers=user.headers)
    assert got.json() == task  # refused as a whole


async def test_a_completed_task_has_no_reminder_and_cannot_be_snoozed(client: httpx.AsyncClient, user: AppUser) -> None:
    task = await create(client, user, "Renew passport", remind_at=hours(2))
    done = await patch(client, user, task, completed=True)
    assert done.json()["completed"] is True and done.json()["remind_at"] is None  # it will not fire
    for fields in ({"snooze_minutes": 10}, {"remind_at": hours(3)}):
        response = await patch(client, user, task, **fields)
        assert response.status_code == 422 and "completed task" in response.json()["detail"]
    reopened = await patch(client, user, task, completed=False, remind_at=hours(3))
    assert reopened.status_code == 200 and reopened.json()["remind_at"] is not None


async def test_the_user_sets_a_time_zone(client: httpx.AsyncClient, user: AppUser) -> None:
    me = await client.get("/api/auth/me", headers=user.headers)
    assert me.json()["timezone"] == "UTC"
    changed = await client.patch("/api/auth/me", json={"timezone": "Europe/Berlin"}, headers=user.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["timezone"] == "Europe/Berlin"
    assert (await client.get("/api/auth/me", headers=user.headers)).json()["timezone"] == "Europe/Berlin"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "europe/berlin", "localtime", "", "../etc/passwd", "UTC\x00"])
async def test_unknown_time_zones_are_refused(client: httpx.AsyncClient, user: AppUser, zone: str) -> None:
    response = await client.patch("/api/auth/me", json={"timezone": zone}, headers=user.headers)
    assert response.status_code == 422
    assert (await client.get("/api/auth/me", headers=user.headers)).json()["timezone"] == "UTC"


async def test_patch_me_needs_a_token(client: httpx.AsyncClient) -> None:
    assert (await client.patch("/api/auth/me", json={"timezone": "UTC"})).status_code == 401


@pytest.fixture
async def seeded(client: httpx.AsyncClient, make_user: MakeUser) -> AppUser:
    """A user with tasks of every kind, and another user whose look-alike tasks must never show."""
    user, stranger = await make_user(), await make_user()
    await create(client, stranger, "Finish the reports", tags=["work"], priority="high", due_at=hours(-1))
    await create(client, user, "Finish the reports", tags=["work", "q4"], priority="high", due_at=hours(-2))
    await create(client, user, "buy milk", tags=["home"], priority="low", due_at=hours(20))
    await create(client, user, "Call mom", description="about the report card", due_at=hours(-30))
    await create(client, user, "Archive the quarterly report", tags=["work"], priority="low")
    done = await create(client, user, "Pay rent", tags=["home"], priority="high", due_at=hours(-5))
    await patch(client, user, done, completed=True)
    return user


async def test_filters_combine(client: httpx.AsyncClient, seeded: AppUser) -> None:
    user = seeded
    assert await listed(client, user, priority="high") == ["Finish the reports", "Pay rent"]
    assert await listed(client, user, priority=["high", "low"], status="pending") == [
        "Finish the reports",
        "buy milk",
        "Archive the quarterly report",
    ]
    assert await listed(client, user, tag="work") == ["Finish the reports", "Archive the quarterly report"]
    assert await listed(client, user, tag=["WORK", "q4"]) == ["Finish the reports"]  # every tag given
    assert await listed(client, user, tag="nope") == []
    assert await listed(client, user, due_before=hours(0)) == ["Finish the reports", "Call mom", "Pay rent"]
    assert await listed(client, user, due_after=hours(0)) == ["buy milk"]
    assert await listed(client, user, due_after=hours(-10), due_before=hours(0)) == ["Finish the reports", "Pay rent"]
    assert await listed(client, user, overdue="true") == ["Finish the reports", "Call mom"]  # not the done one
    assert await listed(client, user, overdue="false") == ["buy milk", "Archive the quarterly report", "Pay rent"]
    assert await listed(client, user, overdue="true", tag="work", priority="high") == ["Finish the reports"]


@pytest.mark.parametrize(
    ("q", "titles"),
    [
        ("report", ["Finish the reports", "Call mom", "Archive the quarterly report"]),  # description too
        ("REPORT", ["Finish the reports", "Call mom", "Archive the quarterly report"]),
        ("quarterly report", ["Archive the quarterly report"]),  # every word
        ("milk", ["buy milk"]),
        ("dentist", []),
    ],
)
async def test_search_finds_words_in_titles_and_descriptions(
    client: httpx.AsyncClient, seeded: AppUser, q: str, titles: list[str]
) -> None:
    assert await listed(client, seeded, q=q) == titles


async def test_search_combines_with_filters_and_counts(client: httpx.AsyncClient, seeded: AppUser) -> None:
    response = await client.get(seeded.url("/tasks"), params={"q": "report", "tag": "work"}, headers=seeded.headers)
    body = response.json()
    assert [t["title"] for t in body["data"]] == ["Finish the reports", "Archive the quarterly report"]
    assert body["count"] == 2


async def test_sorting_either_way(client: httpx.AsyncClient, seeded: AppUser) -> None:
    user = seeded
    created = ["Finish the reports", "buy milk", "Call mom", "Archive the quarterly report", "Pay rent"]
    assert await listed(client, user) == created
    assert await listed(client, user, sort="created", order="desc") == created[::-1]
    # Soonest first; tasks with no due time last, in both directions.
    assert await listed(client, user, sort="due") == [
        "Call mom",
        "Pay rent",
        "Finish the reports",
        "buy milk",
        "Archive the quarterly report",
    ]
    assert await listed(client, user, sort="due", order="desc") == [
        "buy milk",
        "Finish the reports",
        "Pay rent",
        "Call mom",
        "Archive the quarterly report",
    ]
    # High first by default; within a priority, by due time.
    assert await listed(client, user, sort="priority") == [
        "Pay rent",
        "Finish the reports",
        "Call mom",
        "buy milk",
        "Archive the quarterly report",
    ]
    assert (await listed(client, user, sort="priority", order="asc"))[:2] == [
        "buy milk",
        "Archive the quarterly report",
    ]
    assert await listed(client, user, sort="title") == [  # whatever the case
        "Archive the quarterly report",
        "buy milk",
        "Call mom",
        "Finish the reports",
        "Pay rent",
    ]
    assert await listed(client, user, sort="title", order="desc", limit=2, offset=1) == [
        "Finish the reports",
        "Call mom",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "importance"},
        {"order": "up"},
        {"priority": "urgent"},
        {"due_before": "2030-01-01T09:00:00"},
        {"due_after": "soon"},
        {"overdue": "maybe"},
        {"q": ""},
        {"q": "x" * 201},
        {"tag": [f"t{n}" for n in range(11)]},
        {"tag": "y" * 40},
    ],
    ids=["sort", "order", "priority", "naive-time", "not-a-time", "overdue", "empty-q", "long-q", "tags", "long-tag"],
)
async def test_list_refuses_bad_parameters(client: httpx.AsyncClient, user: AppUser, params: dict[str, Any]) -> None:
    response = await client.get(user.url("/tasks"), params=params, headers=user.headers)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid"


async def test_events_carry_the_new_fields(server: LiveServer, client: httpx.AsyncClient, user: AppUser) -> None:
    async with await WSClient.open(server.ws_url, user.token) as ws:
        task = await create(client, user, "Plan the trip", priority="high", tags=["travel"], due_at=hours(72))
        created = await ws.receive("task.created")
        assert created["task"] == task
        updated = (await patch(client, user, task, tags=["travel", "family"], remind_at=hours(1))).json()
        event = await ws.receive("task.updated")
        assert event["task"] == updated and event["task"]["tags"] == ["family", "travel"]
        unchanged = await patch(client, user, task, tags=["Family", "travel"])  # the same set: no event
        assert unchanged.json() == updated
        await ws.expect_nothing("task.updated")

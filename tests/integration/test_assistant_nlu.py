"""The offline agent's dates, priorities, tags, repeats, reminders and queries: real agent, real tools, real database.

Every case runs the rules provider through `Agent.run` with the tools' own `run_tool` on a
migrated database (SQLite and PostgreSQL), at a fixed time in a fixed zone, and is judged by what it left in the
database (title, priority, tags, due and reminder times, repeat rule, completed) or by the ids
the last listing returned: never by the wording of the reply, except for the confirmed time.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from server.abuse import Limits, create_limits
from server.assistant.agent import Agent
from server.assistant.providers.base import ToolCallRequest, TurnContext
from server.assistant.providers.rules import RulesProvider
from server.assistant.tools import run_tool, tool_specs
from server.chat.history import to_chat_messages
from server.db import migrate, tasks, users
from server.db.engine import Sessionmaker, create_engine, create_sessionmaker
from server.db.models import PRIORITIES, Message, Task
from server.db.outbox import transaction
from tests.support import services
from tests.support.clock import ManualClock
from tests.support.settings import make_settings

ZONE = "Europe/Berlin"
NOW = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
"""Thursday 3 December 2026, 10:30 in Berlin (UTC+1)."""

# The seeded list, as (title, due (local ISO) or None, priority, tags, completed).
SEED: tuple[tuple[str, str | None, str, tuple[str, ...], bool], ...] = (
    ("Write the report", "2026-12-04T17:00:00+01:00", "high", ("work",), False),  # 1: due tomorrow
    ("Buy groceries", "2026-12-02T17:00:00+01:00", "normal", ("errands", "home"), False),  # 2: overdue
    ("Call the dentist", None, "low", (), False),  # 3
    ("Plan the trip", "2026-12-08T12:00:00+01:00", "normal", ("travel",), False),  # 4: next week
    ("Pay rent", "2026-12-01T09:00:00+01:00", "normal", (), True),  # 5: done
    ("Review the report draft", "2026-12-03T18:00:00+01:00", "high", ("work",), False),  # 6: due today
)


@dataclass(frozen=True)
class State:
    """What a task is, as the case judges it; None leaves a field unchecked."""

    title: str
    priority: str = "normal"
    tags: tuple[str, ...] = ()
    due_at: str | None = None
    remind_at: str | None = None
    recurrence: str | None = None
    completed: bool = False


@dataclass
class Harness:
    db: Sessionmaker
    limits: Limits
    user_id: int
    context: TurnContext
    rows: list[Message] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    """This turn's calls, with their results."""

    async def say(self, text: str) -> str:
        self.rows.append(Message(conversation_id=1, user_id=self.user_id, role="user", content=text))
        self.calls = []
        agent = Agent(RulesProvider(), tool_specs())  # nothing survives between turns but the rows
        reply = "".join([c async for c in agent.run(to_chat_messages(self.rows), self._execute, self.context)])
        self.rows.append(Message(conversation_id=1, user_id=self.user_id, role="assistant", content=reply))
        return reply

    async def _execute(self, call: ToolCallRequest) -> Any:
        async with transaction(self.db, None) as outbox:
            result = await run_tool(outbox, self.user_id, call, limits=self.limits, clock=ManualClock(self.context.now))
        record = {"id": call.id, "name": call.name, "arguments": call.arguments, "result": result}
        self.calls.append(record)
        content = orjson.dumps(result).decode()
        self.rows.append(
            Message(conversation_id=1, user_id=self.user_id, role="tool", content=content, tool_call=record)
        )
        return result

    async def tasks(self) -> dict[int, State]:
        zone = self.context.zone
        async with self.db() as session:
            rows = (await session.exec(select(Task).where(col(Task.user_id) == self.user_id))).all()
        return {
            t.id or 0: State(
                title=t.title,
                priority=PRIORITIES[t.priority],
                tags=tuple(t.tags),
                due_at=t.due_at.astimezone(zone).isoformat() if t.due_at else None,
                remind_at=t.remind_at.astimezone(zone).isoformat() if t.remind_at else None,
                recurrence=t.recurrence,
                completed=t.completed,
            )
            for t in rows
        }

    def listed(self) -> list[int]:
        """The ids the turn's last listing returned."""
        listing = [c for c in self.calls if c["name"] == "list_tasks"][-1]
        return [item["id"] for item in listing["result"]]


@pytest.fixture(scope="module")
async def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated database file: each test starts from a copy, so task ids start at 1."""
    path = tmp_path_factory.mktemp("nlu") / "template.db"
    engine = create_engine(make_settings(database_url=f"sqlite+aiosqlite:///{path}"))
    await migrate.upgrade(engine)
    await engine.dispose()
    return path


@pytest.fixture(scope="module")
async def postgres() -> AsyncIterator[str]:
    database = await services.create_migrated_database("nlu")
    yield database.url
    await database.drop()


@pytest.fixture(params=["sqlite", "postgres"])
async def database(
    request: pytest.FixtureRequest, migrated: Path, postgres: str, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, Sessionmaker, Limits]]:
    """An empty database whose ids start at 1: a copy of the SQLite file, or PostgreSQL's, truncated."""
    if request.param == "sqlite":
        path = tmp_path / "tasks.db"
        shutil.copyfile(migrated, path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = postgres
    settings = make_settings(database_url=url)
    engine = create_engine(settings)
    if request.param == "postgres":
        async with engine.begin() as connection:
            await connection.execute(text("TRUNCATE users, tasks RESTART IDENTITY CASCADE"))
    limits = create_limits(settings)
    yield engine, create_sessionmaker(engine), limits
    await limits.aclose()
    await engine.dispose()


async def harness(
    database: tuple[AsyncEngine, Sessionmaker, Limits], *, now: datetime = NOW, zone: str = ZONE, seed: bool = True
) -> Harness:
    _, db, limits = database
    async with db() as session, session.begin():
        user = await users.create(session, email="ada@example.com", password_hash="x")
        user_id = user.id or 0
        await users.set_timezone(session, user_id, zone)
    for title, due, priority, tags, completed in SEED if seed else ():
        async with transaction(db, None) as outbox:
            task = await tasks.create(
                outbox,
                user_id,
                title=title,
                priority=priority,
                tags=tags,
                due_at=datetime.fromisoformat(due) if due else None,
                now=now,
            )
            if completed:
                await tasks.update(outbox, user_id, task.id or 0, {"completed": True}, now=now)
    return Harness(db=db, limits=limits, user_id=user_id, context=TurnContext(now=now, timezone=zone))


# --- adding with details: judged by the new task (id 7, after the six seeded) --------------------


@dataclass(frozen=True)
class AddCase:
    id: str
    say: str
    task: State
    reply: str = ""
    """Text the reply must hold (the confirmed time), if any."""


def _due(day: int, hour: int, minute: int = 0, month: int = 12, year: int = 2026) -> str:
    """A wall-clock time in Berlin, as the tools give it back (its offset that day)."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(ZONE)).isoformat()


ADDS = [
    AddCase("tomorrow-5pm", "add call mom tomorrow at 5pm", State("Call mom", due_at=_due(4, 17)), "Fri 4 Dec, 17:00"),
    AddCase("tomorrow-9-morning", "add standup notes tomorrow at 9", State("Standup notes", due_at=_due(4, 9))),
    AddCase("bare-5-is-pm", "add pick up kids at 5", State("Pick up kids", due_at=_due(3, 17))),
    AddCase("today-9-passed", "add walk the dog today at 9", State("Walk the dog", due_at=_due(3, 21))),
    AddCase("next-friday", "add submit expenses next Friday", State("Submit expenses", due_at=_due(4, 17))),
    AddCase("by-monday", "add finish slides by Monday", State("Finish slides", due_at=_due(7, 17))),
    AddCase("in-2-hours", "add check the oven in 2 hours", State("Check the oven", due_at=_due(3, 12, 30))),
    AddCase("in-30-minutes", "add move the car in 30 minutes", State("Move the car", due_at=_due(3, 11))),
    AddCase("in-3-days", "add return the books in 3 days", State("Return the books", due_at=_due(6, 17))),
    AddCase(
        "on-the-3rd", "add pay the phone bill on the 3rd", State("Pay the phone bill", due_at=_due(3, 17, 0, 1, 2027))
    ),
    AddCase("on-the-15th", "add renew insurance on the 15th", State("Renew insurance", due_at=_due(15, 17))),
    AddCase("tonight", "add call grandma tonight", State("Call grandma", due_at=_due(3, 20))),
    AddCase("tonight-at-8", "add watch the match tonight at 8", State("Watch the match", due_at=_due(3, 20))),
    AddCase(
        "end-of-month", "add file the timesheet end of the month", State("File the timesheet", due_at=_due(31, 17))
    ),
    AddCase("month-day", "add buy presents by December 20", State("Buy presents", due_at=_due(20, 17))),
    AddCase("day-month", "add book the venue on 9 January", State("Book the venue", due_at=_due(9, 17, 0, 1, 2027))),
    AddCase("today-by-date", "add call the plumber on dec 3rd at 4pm", State("Call the plumber", due_at=_due(3, 16))),
    AddCase("ordinal-in-title", "add gift for mom's 50th", State("Gift for mom's 50th")),
    AddCase("iso-date", "add send the invoice on 2026-12-10", State("Send the invoice", due_at=_due(10, 17))),
    AddCase("24h", "add deploy the release tomorrow at 14:30", State("Deploy the release", due_at=_due(4, 14, 30))),
    AddCase("noon", "add lunch with sam tomorrow at noon", State("Lunch with sam", due_at=_due(4, 12))),
    AddCase("morning", "add water the garden tomorrow morning", State("Water the garden", due_at=_due(4, 9))),
    AddCase("evening-7", "add dinner party tomorrow evening at 7", State("Dinner party", due_at=_due(4, 19))),
    AddCase("time-first", "add tomorrow at 9 call the bank", State("Call the bank", due_at=_due(4, 9))),
    AddCase("due-word", "add tax return due Friday at 3pm", State("Tax return", due_at=_due(4, 15))),
    AddCase("urgent", "add fix the login bug, it's urgent", State("Fix the login bug", priority="high")),
    AddCase("urgent-front", "add urgent: renew passport", State("Renew passport", priority="high")),
    AddCase("high-priority", "add prepare the budget with high priority", State("Prepare the budget", priority="high")),
    AddCase("low-priority", "add sort the photos low priority", State("Sort the photos", priority="low")),
    AddCase("hashtag", "add buy printer ink #work", State("Buy printer ink", tags=("work",))),
    AddCase("hashtags", "add plan the party #home #fun", State("Plan the party", tags=("fun", "home"))),
    AddCase("tag-it", "add fix the fence and tag it home", State("Fix the fence", tags=("home",))),
    AddCase("tagged-two", "add buy a drill tagged diy and errands", State("Buy a drill", tags=("diy", "errands"))),
    AddCase(
        "everything",
        "add call mom tomorrow at 5pm #family, high priority",
        State("Call mom", priority="high", tags=("family",), due_at=_due(4, 17)),
    ),
    AddCase(
        "every-monday",
        "add water the plants every Monday",
        State("Water the plants", due_at=_due(7, 17), recurrence="FREQ=WEEKLY;BYDAY=MO"),
        "every Monday",
    ),
    AddCase(
        "every-monday-at-9",
        "add team sync every monday at 9",
        State("Team sync", due_at=_due(7, 9), recurrence="FREQ=WEEKLY;BYDAY=MO"),
    ),
    AddCase("daily", "add take vitamins daily", State("Take vitamins", due_at=_due(3, 17), recurrence="FREQ=DAILY")),
    AddCase(
        "every-morning",
        "add meditate every morning",
        State("Meditate", due_at=_due(4, 9), recurrence="FREQ=DAILY"),
    ),
    AddCase(
        "every-monday-morning",
        "add meditate every monday morning",
        State("Meditate", due_at=_due(7, 9), recurrence="FREQ=WEEKLY;BYDAY=MO"),
    ),
    AddCase(
        "every-2-weeks",
        "add clean the windows every 2 weeks",
        State("Clean the windows", due_at=_due(3, 17), recurrence="FREQ=WEEKLY;INTERVAL=2"),
    ),
    AddCase(
        "every-other-week",
        "add mow the lawn every other week",
        State("Mow the lawn", due_at=_due(3, 17), recurrence="FREQ=WEEKLY;INTERVAL=2"),
    ),
    AddCase(
        "weekdays",
        "add check email every weekday at 8:30",
        State("Check email", due_at=_due(4, 8, 30), recurrence="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    ),
    AddCase(
        "first-of-month",
        "add pay rent on the first of every month",
        State("Pay rent", due_at=_due(1, 17, 0, 1, 2027), recurrence="FREQ=MONTHLY;BYMONTHDAY=1"),
    ),
    AddCase(
        "monthly-15th",
        "add pay the card every month on the 15th",
        State("Pay the card", due_at=_due(15, 17), recurrence="FREQ=MONTHLY;BYMONTHDAY=15"),
    ),
    AddCase(
        "tue-thu",
        "add gym every tuesday and thursday at 7pm",
        State("Gym", due_at=_due(3, 19), recurrence="FREQ=WEEKLY;BYDAY=TU,TH"),
    ),
    AddCase(
        "remind-me-to",
        "remind me to call the dentist tomorrow at 9",
        State("Call the dentist", due_at=_due(4, 9), remind_at=_due(4, 9)),
        "Fri 4 Dec, 09:00",
    ),
    AddCase(
        "remind-me-when-to",
        "remind me in 20 minutes to check the oven",
        State("Check the oven", due_at=_due(3, 10, 50), remind_at=_due(3, 10, 50)),
    ),
    AddCase(
        "remind-me-tomorrow-to",
        "remind me tomorrow to call mom",
        State("Call mom", due_at=_due(4, 9), remind_at=_due(4, 9)),
    ),
    AddCase(
        "remind-every-tuesday",
        "remind me to take out the trash every Tuesday at 8pm",
        State("Take out the trash", due_at=_due(8, 20), remind_at=_due(8, 20), recurrence="FREQ=WEEKLY;BYDAY=TU"),
    ),
    AddCase(
        "remind-me-day-only",
        "remind me to renew the lease on Monday",
        State("Renew the lease", due_at=_due(7, 9), remind_at=_due(7, 9)),
    ),
    AddCase(
        "remind-before",
        "add dentist appointment tomorrow at 3pm, remind me 30 minutes before",
        State("Dentist appointment", due_at=_due(4, 15), remind_at=_due(4, 14, 30)),
    ),
    AddCase(
        "remind-at",
        "add submit the form friday at 5pm and remind me at 9am",
        State("Submit the form", due_at=_due(4, 17), remind_at=_due(4, 9)),
    ),
    AddCase(
        "quoted-keeps-time-words", "add 'call mom tonight' for friday", State("Call mom tonight", due_at=_due(4, 17))
    ),
    AddCase("no-date-words", "add buy 2 apples", State("Buy 2 apples")),
]


@pytest.mark.parametrize("c", ADDS, ids=[c.id for c in ADDS])
async def test_add_with_details(database: tuple[AsyncEngine, Sessionmaker, Limits], c: AddCase) -> None:
    h = await harness(database)
    reply = await h.say(c.say)
    state = await h.tasks()
    assert state.get(7) == c.task, reply
    assert len(state) == 7  # one task added, nothing else
    assert c.reply in reply


# --- asking when a time is really ambiguous ---------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "options", "answer", "due"),
    [
        ("add call bob tomorrow at 7", ("Fri 4 Dec, 07:00", "Fri 4 Dec, 19:00"), "pm", _due(4, 19)),
        ("add call bob tomorrow at 7", ("Fri 4 Dec, 07:00", "Fri 4 Dec, 19:00"), "in the morning", _due(4, 7)),
        ("add call bob tomorrow at 7", ("Fri 4 Dec, 07:00", "Fri 4 Dec, 19:00"), "19:30", _due(4, 19, 30)),
        # said on a Thursday
        ("add review the budget on Thursday", ("Thu 3 Dec, 17:00", "Thu 10 Dec, 17:00"), "next Thursday", _due(10, 17)),
        ("add review the budget on Thursday", ("Thu 3 Dec, 17:00", "Thu 10 Dec, 17:00"), "today", _due(3, 17)),
        ("remind me about task 3 on Thursday at 9am", ("Thu 3 Dec, 09:00", "Thu 10 Dec, 09:00"), "next week", None),
    ],
)
async def test_an_ambiguous_time_is_asked_about_and_the_answer_settles_it(
    database: tuple[AsyncEngine, Sessionmaker, Limits],
    message: str,
    options: tuple[str, str],
    answer: str,
    due: str | None,
) -> None:
    h = await harness(database)
    reply = await h.say(message)
    assert h.calls == [] and await h.tasks() == {i: _seeded(i) for i in range(1, 7)}
    assert all(option in reply for option in options), reply
    await h.say(answer)  # the question's answer: the first message, said again with it
    state = await h.tasks()
    if due is None:
        assert state[3] == _seeded(3, remind_at=_due(10, 9))
    else:
        assert state[7] == State("Call bob" if "bob" in message else "Review the budget", due_at=due)


async def test_an_answer_that_is_no_time_changes_nothing(database: tuple[AsyncEngine, Sessionmaker, Limits]) -> None:
    h = await harness(database)
    await h.say("add call bob tomorrow at 7")
    reply = await h.say("hmm dunno")
    assert h.calls == [] and len(await h.tasks()) == len(SEED)
    assert "didn't catch that" in reply


async def test_this_weekday_said_on_that_day_is_today(database: tuple[AsyncEngine, Sessionmaker, Limits]) -> None:
    h = await harness(database)
    await h.say("add review the budget this Thursday")
    assert (await h.tasks())[7].due_at == _due(3, 17)


# --- daylight saving: "tomorrow at 9" is 09:00 on the wall clock, whatever the offset ----------------


@pytest.mark.parametrize(
    ("zone", "now", "due"),
    [
        # Saturday 28 March 2026, 12:00 in Berlin (UTC+1); Sunday is summer time (UTC+2).
        ("Europe/Berlin", datetime(2026, 3, 28, 11, 0, tzinfo=UTC), "2026-03-29T09:00:00+02:00"),
        # Saturday 31 October 2026 in New York (UTC-4); Sunday is standard time (UTC-5).
        ("America/New_York", datetime(2026, 10, 31, 16, 0, tzinfo=UTC), "2026-11-01T09:00:00-05:00"),
    ],
)
async def test_tomorrow_at_9_across_a_dst_change(
    database: tuple[AsyncEngine, Sessionmaker, Limits], zone: str, now: datetime, due: str
) -> None:
    h = await harness(database, now=now, zone=zone, seed=False)
    reply = await h.say("remind me to call the bank tomorrow at 9")
    [task] = (await h.tasks()).values()
    assert task.due_at == due and task.remind_at == due
    assert "09:00" in reply


async def test_in_2_hours_is_elapsed_time_across_a_dst_change(
    database: tuple[AsyncEngine, Sessionmaker, Limits],
) -> None:
    # 01:30 in Berlin on 29 March 2026; at 02:00 the clocks jump to 03:00: two hours on is 04:30.
    h = await harness(database, now=datetime(2026, 3, 29, 0, 30, tzinfo=UTC), seed=False)
    await h.say("add check the boiler in 2 hours")
    [task] = (await h.tasks()).values()
    assert task.due_at == "2026-03-29T04:30:00+02:00"


# --- changing a task: judged by the task afterwards ---------------------------------------------


@dataclass(frozen=True)
class ChangeCase:
    id: str
    say: tuple[str, ...]
    task_id: int
    task: State


def _seeded(index: int, **changes: Any) -> State:
    title, due, priority, tags, completed = SEED[index - 1]
    fields: dict[str, Any] = {
        "title": title,
        "priority": priority,
        "tags": tags,
        "due_at": due,
        "completed": completed,
    }
    return State(**(fields | changes))


CHANGES = [
    ChangeCase("move-to-friday", ("move task 3 to friday",), 3, _seeded(3, due_at=_due(4, 17))),
    ChangeCase("reschedule-words", ("reschedule the trip to next monday at 10",), 4, _seeded(4, due_at=_due(7, 10))),
    ChangeCase(
        "postpone-it",
        ("make task 3 low priority", "postpone it until tomorrow at 4pm"),
        3,
        _seeded(3, due_at=_due(4, 16)),
    ),
    ChangeCase("is-due", ("the dentist task is due on the 10th",), 3, _seeded(3, due_at=_due(10, 17))),
    ChangeCase("make-high", ("make task 3 high priority",), 3, _seeded(3, priority="high")),
    ChangeCase("mark-urgent", ("mark groceries as urgent",), 2, _seeded(2, priority="high")),
    ChangeCase("set-priority-low", ("set the priority of task 1 to low",), 1, _seeded(1, priority="low")),
    ChangeCase("tag-it-home", ("complete task 3", "reopen it", "tag it home"), 3, _seeded(3, tags=("home",))),
    ChangeCase("tag-with", ("tag the trip with family",), 4, _seeded(4, tags=("family", "travel"))),
    ChangeCase("untag", ("remove the tag errands from task 2",), 2, _seeded(2, tags=("home",))),
    ChangeCase("repeat-weekly", ("make task 1 repeat every friday",), 1, _seeded(1, recurrence="FREQ=WEEKLY;BYDAY=FR")),
    ChangeCase(
        "repeat-without-due",
        ("repeat the dentist task every month on the 1st",),
        3,
        _seeded(3, due_at=_due(1, 17, 0, 1, 2027), recurrence="FREQ=MONTHLY;BYMONTHDAY=1"),
    ),
    ChangeCase("clear-due", ("remove the due date from task 4",), 4, _seeded(4, due_at=None)),
    ChangeCase(
        "stop-repeating",
        ("make task 1 repeat every friday", "stop repeating it"),
        1,
        _seeded(1),
    ),
    ChangeCase(
        "remind-about-it",
        ("make task 4 normal priority", "remind me about it tomorrow"),
        4,
        _seeded(4, remind_at=_due(4, 9)),
    ),
    ChangeCase(
        "remind-before-it",
        ("make task 1 high priority", "remind me 30 minutes before"),
        1,
        _seeded(1, remind_at=_due(4, 16, 30)),
    ),
    ChangeCase(
        "remind-about-title",
        ("remind me about the trip on Monday at 8am",),
        4,
        _seeded(4, remind_at=_due(7, 8)),
    ),
    ChangeCase(
        "snooze",
        ("remind me about task 6 at 5pm", "snooze it for 10 minutes"),
        6,
        _seeded(6, remind_at=_due(3, 10, 40)),
    ),
    ChangeCase(
        "dismiss-it",
        ("remind me about task 6 at 5pm", "cancel the reminder"),
        6,
        _seeded(6),
    ),
    ChangeCase(
        "dismiss-by-title",
        ("remind me about task 6 at 5pm", "dismiss the reminder for the report draft"),
        6,
        _seeded(6),
    ),
    ChangeCase(
        "remind-again",
        ("remind me about task 6 at 5pm", "remind me again in 15 minutes"),
        6,
        _seeded(6, remind_at=_due(3, 10, 45)),
    ),
]


@pytest.mark.parametrize("c", CHANGES, ids=[c.id for c in CHANGES])
async def test_change_a_task(database: tuple[AsyncEngine, Sessionmaker, Limits], c: ChangeCase) -> None:
    h = await harness(database)
    replies = [await h.say(text) for text in c.say]
    state = await h.tasks()
    assert state[c.task_id] == c.task, replies[-1]
    assert len(state) == len(SEED)


async def test_remind_before_a_task_without_a_due_time_asks(
    database: tuple[AsyncEngine, Sessionmaker, Limits],
) -> None:
    h = await harness(database)
    await h.say("make task 3 low priority")
    reply = await h.say("remind me 10 minutes before")
    assert "no due time" in reply
    assert (await h.tasks())[3] == _seeded(3)
    assert [c["name"] for c in h.calls] == ["list_tasks"]  # looked the due time up, changed nothing


# --- queries: judged by the ids listed ------------------------------------------------------------


@dataclass(frozen=True)
class QueryCase:
    id: str
    say: str
    ids: list[int]
    """In the order listed."""


QUERIES = [
    QueryCase("due-this-week", "what's due this week?", [2, 6, 1]),
    QueryCase("due-today", "what's due today?", [6]),
    QueryCase("agenda-tomorrow", "what do I have tomorrow?", [1]),
    QueryCase("left-today-is-pending", "what's left for today?", [1, 2, 3, 4, 6]),
    QueryCase("due-tomorrow", "what is due tomorrow", [1]),
    QueryCase("due-next-week", "show tasks due next week", [4]),
    QueryCase("overdue", "anything overdue?", [2]),
    QueryCase("overdue-tasks", "show my overdue tasks", [2]),
    QueryCase("high-priority", "show high priority tasks", [1, 6]),
    QueryCase("low-priority", "list low priority tasks", [3]),
    QueryCase("tagged", "tasks tagged work", [1, 6]),
    QueryCase("hashtag", "show my #home tasks", [2]),
    QueryCase("search", "find tasks about the report", [1, 6]),
    QueryCase("search-for", "search for trip", [4]),
    QueryCase("sort-due", "sort by due date", [5, 2, 6, 1, 4, 3]),
    QueryCase("sorted-priority", "show my pending tasks sorted by priority", [6, 1, 2, 4, 3]),  # then by due
]


@pytest.mark.parametrize("c", QUERIES, ids=[c.id for c in QUERIES])
async def test_queries(database: tuple[AsyncEngine, Sessionmaker, Limits], c: QueryCase) -> None:
    h = await harness(database)
    reply = await h.say(c.say)
    assert h.listed() == c.ids, reply
    for task_id in c.ids:
        assert f"#{task_id} " in reply


async def test_a_listing_shows_due_times_in_the_users_zone(database: tuple[AsyncEngine, Sessionmaker, Limits]) -> None:
    h = await harness(database)
    reply = await h.say("what's due tomorrow?")
    assert "#1 Write the report [due Fri 4 Dec, 17:00, high priority, #work]" in reply


# --- a task said without a command word: added when it carries a schedule detail -------------------

STATED = [
    AddCase(
        "stated-every-monday",
        "water the plants every Monday",
        State("Water the plants", due_at=_due(7, 17), recurrence="FREQ=WEEKLY;BYDAY=MO"),
        "every Monday",
    ),
    AddCase(
        "stated-appointment",
        "dentist appointment tomorrow at 3pm",
        State("Dentist appointment", due_at=_due(4, 15)),
        "Fri 4 Dec, 15:00",
    ),
    AddCase(
        "stated-monthly-tag",
        "pay rent on the first of every month #home",
        State("Pay rent", tags=("home",), due_at=_due(1, 17, 0, 1, 2027), recurrence="FREQ=MONTHLY;BYMONTHDAY=1"),
    ),
    AddCase(
        "stated-urgent-before",
        "urgent: call the bank before 5pm",
        State("Call the bank", priority="high", due_at=_due(3, 17)),
        "high priority",
    ),
    AddCase("stated-imperative", "call mom tomorrow at 5pm", State("Call mom", due_at=_due(4, 17))),
    AddCase("stated-tag-only", "buy milk #errands", State("Buy milk", tags=("errands",))),
    AddCase("stated-asap", "renew passport asap", State("Renew passport", priority="high")),
    AddCase("stated-possessive", "mom's birthday on friday", State("Mom's birthday", due_at=_due(4, 17))),
    AddCase(
        "stated-two-weekdays",
        "gym every tuesday and thursday at 7pm",
        State("Gym", due_at=_due(3, 19), recurrence="FREQ=WEEKLY;BYDAY=TU,TH"),
    ),
    AddCase(
        "stated-weekday-night",
        "take out the trash every tuesday night",
        State("Take out the trash", due_at=_due(8, 20), recurrence="FREQ=WEEKLY;BYDAY=TU"),
    ),
    AddCase(
        "stated-weekdays",
        "standup every weekday at 9:30",
        State("Standup", due_at=_due(4, 9, 30), recurrence="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"),
    ),
    AddCase(
        "stated-priority-after",
        "lunch with sam tomorrow, high priority",
        State("Lunch with sam", priority="high", due_at=_due(4, 17)),
    ),
    AddCase("stated-in-minutes", "check the oven in 20 minutes", State("Check the oven", due_at=_due(3, 10, 50))),
    AddCase("stated-month-day", "file taxes by april 15", State("File taxes", due_at=_due(15, 17, 0, 4, 2027))),
    AddCase(
        "stated-greeted", "hi, dentist appointment tomorrow at 3pm", State("Dentist appointment", due_at=_due(4, 15))
    ),
    AddCase(
        "stated-polite",
        "could you flight to berlin at 6am tomorrow please",
        State("Flight to berlin", due_at=_due(4, 6)),
    ),
]


@pytest.mark.parametrize("c", STATED, ids=[c.id for c in STATED])
async def test_a_stated_task_is_added(database: tuple[AsyncEngine, Sessionmaker, Limits], c: AddCase) -> None:
    h = await harness(database)
    reply = await h.say(c.say)
    state = await h.tasks()
    assert state.get(7) == c.task, reply
    assert len(state) == 7  # one task added, nothing else
    assert f'Added "{c.task.title}"' in reply and c.reply in reply


NOT_TASKS = [
    "hello",
    "thanks",
    "the weather is nice",
    "nice weather today",
    "busy day tomorrow",
    "I'm busy tomorrow",
    "it's urgent",
    "the match is on Friday",
    "maybe tomorrow",
    "ok tomorrow then",
    "see you on Monday",
    "have a nice day tomorrow",
    "thanks for the help today",
    "dentist appointment tomorrow?",
    "who's free on friday",
    "what about friday",
    "tomorrow at 5pm",
    "call mom",  # a task, but no schedule detail: it needs "add"
    "task 3 tomorrow",
    "very important",
]


@pytest.mark.parametrize("message", NOT_TASKS)
async def test_chat_with_or_without_a_date_adds_no_task(
    database: tuple[AsyncEngine, Sessionmaker, Limits], message: str
) -> None:
    h = await harness(database)
    reply = await h.say(message)
    assert [c["name"] for c in h.calls if c["name"] != "list_tasks"] == [], reply
    assert await h.tasks() == {i: _seeded(i) for i in range(1, 7)}


@pytest.mark.parametrize(
    ("said", "listed", "task_id", "task"),
    [
        (("what's due tomorrow",), [1], None, None),
        (("show tasks tagged work",), [1, 6], None, None),
        (("I've written the report",), None, 1, _seeded(1, completed=True)),
        (("add pay the bills", "I've paid the bills yesterday"), None, 7, State("Pay the bills", completed=True)),
        (("move task 3 to friday",), None, 3, _seeded(3, due_at=_due(4, 17))),
    ],
)
async def test_the_other_commands_keep_precedence(
    database: tuple[AsyncEngine, Sessionmaker, Limits],
    said: tuple[str, ...],
    listed: list[int] | None,
    task_id: int | None,
    task: State | None,
) -> None:
    h = await harness(database)
    replies = [await h.say(text) for text in said]
    state = await h.tasks()
    assert len(state) == len(SEED) + said[0].startswith("add "), replies[-1]  # the last message added nothing
    if listed is not None:
        assert h.listed() == listed
    if task_id is not None:
        assert state[task_id] == task, replies[-1]


async def test_a_stated_task_after_a_question_is_added_when_it_answers_nothing(
    database: tuple[AsyncEngine, Sessionmaker, Limits],
) -> None:
    h = await harness(database)
    await h.say("delete the report")  # two tasks fit: "which one?"
    reply = await h.say("water the plants every Monday")
    state = await h.tasks()
    assert state[7] == State("Water the plants", due_at=_due(7, 17), recurrence="FREQ=WEEKLY;BYDAY=MO"), reply
    assert state[1] == _seeded(1) and state[6] == _seeded(6)  # the question's deletion did not happen
    await h.say("add call bob tomorrow at 7")  # "07:00 or 19:00?"
    await h.say("dentist appointment tomorrow at 3pm")
    state = await h.tasks()
    assert state[8] == State("Dentist appointment", due_at=_due(4, 15)) and len(state) == 8

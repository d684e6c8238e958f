"""Queries on tasks. Every change emits its `task.*` event through the transaction's outbox.

Each change locks the user's row first (`users.lock`), then reads the task: every writing
transaction takes the user's row before any other row, so two of them never wait on each other
(no deadlock), and a change sees what the one before it committed (a repeating task completed
from two devices at once is completed, and its next occurrence created, exactly once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, false, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server import protocol, recurrence
from server.db import tags as task_tags, users
from server.db.models import PRIORITIES, TAGS_MAX, TASK_SEARCH, Task, utcnow
from server.db.outbox import Outbox
from server.errors import InvalidInputError, NotFoundError

Status = Literal["all", "pending", "completed"]
SortKey = Literal["created", "due", "priority", "title"]
Order = Literal["asc", "desc"]
DEFAULT_ORDER: dict[SortKey, Order] = {"created": "asc", "due": "asc", "priority": "desc", "title": "asc"}
"""Oldest first, soonest due first, most important first, A to Z."""
PLAIN_FIELDS = ("title", "description", "completed", "priority", "due_at", "recurrence")
CLEARABLE = frozenset({"description", "due_at", "recurrence"})
"""Fields that null clears; for the others (title, completed, priority) null means "no change"."""


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """What `list_for_user` filters by (all of it) and sorts by."""

    status: Status = "all"
    priorities: tuple[str, ...] = ()
    """Any of these."""
    tags: tuple[str, ...] = ()
    """All of these (normalised)."""
    due_before: datetime | None = None
    """due_at < due_before; tasks with no due time are left out."""
    due_after: datetime | None = None
    """due_at >= due_after."""
    overdue: bool | None = None
    """True: pending tasks whose due time has passed; False: all the others."""
    text: str | None = None
    sort: SortKey = "created"
    order: Order | None = None
    """None: the sort's natural direction (DEFAULT_ORDER)."""


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    assert bind is not None, "sessions are bound to the engine"
    return bind.dialect.name


def _matches(session: AsyncSession, text: str) -> Any:
    """Full-text search on PostgreSQL; on SQLite, every word of `text` somewhere in title or description."""
    if _dialect(session) == "postgresql":
        return TASK_SEARCH.op("@@")(func.websearch_to_tsquery("english", text))
    words = re.findall(r"\w+", text.lower())
    if not words:
        return false()
    return and_(*(TASK_SEARCH.contains(word, autoescape=True) for word in words))


def _filtered(session: AsyncSession, user_id: int, query: TaskQuery, now: datetime) -> Any:
    statement = select(Task).where(Task.user_id == user_id)
    if query.status != "all":
        statement = statement.where(Task.completed == (query.status == "completed"))
    if query.priorities:
        statement = statement.where(col(Task.priority).in_([PRIORITIES.index(p) for p in query.priorities]))
    for tag in query.tags:
        statement = statement.where(task_tags.tagged(user_id, tag))
    if query.due_before is not None:
        statement = statement.where(col(Task.due_at) < query.due_before)
    if query.due_after is not None:
        statement = statement.where(col(Task.due_at) >= query.due_after)
    if query.overdue is True:
        statement = statement.where(col(Task.completed).is_(False), col(Task.due_at) < now)
    elif query.overdue is False:
        statement = statement.where(
            or_(col(Task.completed).is_(True), col(Task.due_at).is_(None), col(Task.due_at) >= now)
        )
    if query.text is not None:
        statement = statement.where(_matches(session, query.text))
    return statement


def _ordering(query: TaskQuery) -> list[Any]:
    descending = (query.order or DEFAULT_ORDER[query.sort]) == "desc"

    def way(column: Any) -> Any:
        return column.desc() if descending else column.asc()

    if query.sort == "created":
        return [way(col(Task.created_at)), way(col(Task.id))]
    if query.sort == "due":  # tasks with no due time last, either way
        return [way(col(Task.due_at)).nulls_last(), col(Task.id)]
    if query.sort == "priority":  # then by due time, then creation
        return [way(col(Task.priority)), col(Task.due_at).asc().nulls_last(), col(Task.id)]
    return [way(func.lower(col(Task.title))), col(Task.id)]  # A before b, whatever the case


async def list_for_user(
    session: AsyncSession,
    user_id: int,
    query: TaskQuery | None = None,
    *,
    now: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Task], int]:
    """A page of tasks in `query`'s order (id breaks ties), and the total matching its filters."""
    query = query or TaskQuery()
    statement = _filtered(session, user_id, query, now or utcnow())
    rows = await session.exec(statement.order_by(*_ordering(query)).limit(limit).offset(offset))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    return rows.all(), int(total or 0)


async def get(session: AsyncSession, user_id: int, task_id: int, *, fresh: bool = False) -> Task:
    """The user's task; another user's task is indistinguishable from a missing one.

    `fresh`: read it again even if this session already holds it (after taking the user's lock).
    """
    task = await session.get(Task, task_id, populate_existing=fresh)
    if task is None or task.user_id != user_id:
        raise NotFoundError("Task not found")
    return task


async def create(
    outbox: Outbox,
    user_id: int,
    *,
    title: str,
    description: str | None = None,
    priority: str = "normal",
    tags: Sequence[str] = (),
    due_at: datetime | None = None,
    remind_at: datetime | None = None,
    recurrence_rule: str | None = None,
    now: datetime | None = None,
) -> Task:
    """A new task (fields already validated one by one: `TaskCreate`); 422 for combinations that cannot be."""
    now = now or utcnow()
    zone = ZoneInfo(await users.lock(outbox.session, user_id))
    if remind_at is not None:
        _not_past(remind_at, now)
    task = Task(
        user_id=user_id,
        title=title,
        description=description,
        priority=PRIORITIES.index(priority),
        due_at=due_at,
        remind_at=remind_at,
        remind_lead=_lead(due_at, remind_at),
        recurrence=recurrence_rule,
    )
    _check_recurrence(task, zone)
    seq = await outbox.reserve(user_id)
    outbox.session.add(task)
    await outbox.session.flush()
    await task_tags.replace(outbox.session, task, tags)
    outbox.record(user_id, protocol.task_event("task.created", seq, protocol.task_body(task)))
    return task


class Updated(NamedTuple):
    task: Task
    next_task: Task | None = None
    """The next occurrence, created by completing a repeating task."""


async def update(
    outbox: Outbox, user_id: int, task_id: int, changes: dict[str, Any], *, now: datetime | None = None
) -> Updated:
    """Apply `changes` (the fields of `TaskUpdate`, plus `add_tags`/`remove_tags`); emits the events of what changed.

    - `task.updated` when anything changed; completing a repeating task also creates its next
      occurrence (`task.created`), and the completed one stops repeating.
    - `reminder.dismissed` for `dismiss_reminder`, even when the reminder had already fired, so
      every device closes it.
    """
    now = now or utcnow()
    session = outbox.session
    zone = ZoneInfo(await users.lock(session, user_id))
    task = await get(session, user_id, task_id, fresh=True)
    was_completed = task.completed
    try:
        changed = _apply_fields(task, changes)
        changed |= _apply_reminder(task, changes, now)
        if "completed" in changed and task.completed and task.remind_at is not None:
            task.remind_at = None  # a done task needs no reminder
            changed.add("remind_at")
        if changed & {"due_at", "recurrence"}:
            _check_recurrence(task, zone)
        tags = _new_tags(task.tags, changes)
    except InvalidInputError:
        # Nothing of a refused change may reach the database: the caller's transaction may go on
        # (a tool call's error is a result, not an exception).
        session.expire(task)
        raise
    dismissed = changes.get("dismiss_reminder") is True
    if not changed and tags == task.tags and not dismissed:
        return Updated(task)
    following = _next_occurrence(task, zone, now) if task.completed and not was_completed else None
    if following is not None:
        task.recurrence = None  # the series goes on in the next occurrence
    if await task_tags.replace(session, task, tags):
        changed.add("tags")
    if changed:
        task.updated_at = utcnow()
    await session.flush()
    if changed - ({"remind_at"} if dismissed else set()):
        outbox.record(
            user_id, protocol.task_event("task.updated", await outbox.reserve(user_id), protocol.task_body(task))
        )
    if dismissed:
        outbox.record(user_id, protocol.reminder_dismissed(await outbox.reserve(user_id), protocol.task_body(task)))
    if following is not None:
        seq = await outbox.reserve(user_id)
        session.add(following)
        await session.flush()
        await task_tags.replace(session, following, task.tags)
        outbox.record(user_id, protocol.task_event("task.created", seq, protocol.task_body(following)))
    return Updated(task, following)


async def delete(outbox: Outbox, user_id: int, task_id: int) -> Task:
    await users.lock(outbox.session, user_id)
    task = await get(outbox.session, user_id, task_id, fresh=True)
    seq = await outbox.reserve(user_id)
    frame = protocol.task_event("task.deleted", seq, protocol.task_body(task))
    await outbox.session.delete(task)
    await outbox.session.flush()
    outbox.record(user_id, frame)
    return task


# --- the rules of a change ---------------------------------------------------------------------


def _apply_fields(task: Task, changes: dict[str, Any]) -> set[str]:
    changed = set()
    for field in PLAIN_FIELDS:
        if field not in changes:
            continue
        value = changes[field]
        if value is None and field not in CLEARABLE:
            continue
        if field == "priority":
            value = PRIORITIES.index(value)
        if getattr(task, field) != value:
            setattr(task, field, value)
            changed.add(field)
    return changed


def _apply_reminder(task: Task, changes: dict[str, Any], now: datetime) -> set[str]:
    """`remind_at` sets (or with null removes) the reminder; `snooze_minutes` and `dismiss_reminder` move
    or drop only the pending one, keeping the offset the next occurrences are reminded at."""
    before = (task.remind_at, task.remind_lead)
    if "remind_at" in changes:
        remind_at = changes["remind_at"]
        if remind_at is not None:
            if task.completed:  # as it is after this change
                raise InvalidInputError("A completed task cannot have a reminder")
            _not_past(remind_at, now)
        task.remind_at, task.remind_lead = remind_at, _lead(task.due_at, remind_at)
    elif changes.get("snooze_minutes") is not None:
        if task.completed:
            raise InvalidInputError("A completed task cannot be snoozed")
        task.remind_at = now + timedelta(minutes=int(changes["snooze_minutes"]))
    elif changes.get("dismiss_reminder") is True:
        task.remind_at = None
    return {"remind_at"} if (task.remind_at, task.remind_lead) != before else set()


def _new_tags(current: list[str], changes: dict[str, Any]) -> list[str]:
    tags = set(changes["tags"]) if changes.get("tags") is not None else set(current)
    tags |= set(changes.get("add_tags") or ())
    tags -= set(changes.get("remove_tags") or ())
    if len(tags) > TAGS_MAX:
        raise InvalidInputError(f"A task has at most {TAGS_MAX} tags; this change would give it {len(tags)}")
    return sorted(tags)


def _lead(due_at: datetime | None, remind_at: datetime | None) -> int | None:
    if due_at is None or remind_at is None:
        return None
    return int((due_at - remind_at).total_seconds())


def _not_past(remind_at: datetime, now: datetime) -> None:
    if remind_at < now:
        raise InvalidInputError("remind_at is in the past: a reminder must be set for a time still to come")


def _check_recurrence(task: Task, zone: ZoneInfo) -> None:
    if task.recurrence is None:
        return
    if task.due_at is None:
        raise InvalidInputError("A repeating task needs a due_at: the rule counts from it")
    if recurrence.next_occurrence(task.recurrence, due_at=task.due_at, after=task.due_at, zone=zone) is None:
        raise InvalidInputError(f"The rule {task.recurrence} never repeats after the task's due_at")


def _next_occurrence(task: Task, zone: ZoneInfo, now: datetime) -> Task | None:
    """The task's next occurrence, when completing a repeating task: due by the rule, reminded as long before."""
    if task.recurrence is None or task.due_at is None:
        return None
    due_at = recurrence.next_occurrence(task.recurrence, due_at=task.due_at, after=now, zone=zone)
    if due_at is None:
        return None
    remind_at = None if task.remind_lead is None else due_at - timedelta(seconds=task.remind_lead)
    return Task(
        user_id=task.user_id,
        title=task.title,
        description=task.description,
        priority=task.priority,
        due_at=due_at,
        remind_at=remind_at if remind_at is not None and remind_at >= now else None,
        remind_lead=task.remind_lead,
        recurrence=task.recurrence,
    )

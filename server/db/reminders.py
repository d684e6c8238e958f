"""Reminders falling due: claimed per user under the user's row lock, each fired exactly once as a `reminder` event.

A claim is one transaction: find the users with reminders due (no locks), lock a batch of them
(`FOR UPDATE SKIP LOCKED`: workers racing take different batches, none waits for another; a batch
all held elsewhere is passed over for the next), read their due tasks again under
the lock (every writer of a user's tasks takes the user's row first, so what this read finds
stays true until commit), then in the same transaction log one `reminder` event per task with
the user's next seq and clear its `remind_at`. A worker that dies mid-claim rolls back and the
reminders stay due for the next claim; one that commits has fired them. Nothing is lost or sent
twice, whatever the number of workers. On SQLite (one process) the transaction's write lock
does the same and FOR UPDATE is left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server import protocol
from server.db import events
from server.db.models import Task, User, utcnow
from server.db.outbox import Outbox


@dataclass(frozen=True, slots=True)
class Claim:
    users: int
    """Users locked by this claim."""
    fired: int
    """Reminders fired (events logged)."""
    full: bool
    """The batch was full: more may be due right now."""


async def next_due(session: AsyncSession) -> datetime | None:
    """The earliest pending reminder of anyone (an index lookup), or None."""
    value: datetime | None = await session.scalar(
        select(func.min(col(Task.remind_at))).where(col(Task.remind_at).is_not(None))
    )
    return value


CANDIDATE_CHUNKS = 8
"""How many batches' worth of due users one claim looks at, to find some that no other worker holds."""


async def claim(outbox: Outbox, *, now: datetime, max_users: int, max_reminders: int) -> Claim:
    """Fire the reminders due at `now` of a batch of users (up to `max_users`, their due reminders up to
    `max_reminders` in all) that no other transaction holds."""
    session = outbox.session
    # Who has reminders due, the longest overdue first: read without locks, then claimed batch by
    # batch, so that racing workers each take a batch of their own instead of queueing for the first.
    candidates = (
        await session.exec(
            select(col(Task.user_id), func.count())
            .where(col(Task.remind_at) <= now)
            .group_by(col(Task.user_id))
            .order_by(func.min(col(Task.remind_at)), col(Task.user_id))
            .limit(max_users * CANDIDATE_CHUNKS)
        )
    ).all()
    locked: Sequence[int | None] = ()
    for batch in _batches(candidates, max_users=max_users, max_reminders=max_reminders):
        locked = (
            await session.exec(
                select(col(User.id))
                .where(col(User.id).in_(batch))
                .order_by(col(User.id))
                .with_for_update(skip_locked=True)
            )
        ).all()
        if locked:
            break
    if not locked:
        return Claim(users=0, fired=0, full=False)
    tasks = (
        await session.exec(
            select(Task)
            .where(col(Task.user_id).in_(locked), col(Task.remind_at) <= now)  # again, now under the lock
            .order_by(col(Task.user_id), col(Task.remind_at), col(Task.id))
            .limit(max_reminders)
        )
    ).all()
    counts: dict[int, int] = {}
    for task in tasks:
        counts[task.user_id] = counts.get(task.user_id, 0) + 1
    seqs = await events.reserve_seqs_for(session, counts)
    changed_at = utcnow()
    for task in tasks:
        remind_at = task.remind_at
        assert remind_at is not None
        task.remind_at = None  # fired: the lead is kept for the next occurrence of a repeating task
        task.updated_at = changed_at
        seq = seqs[task.user_id]
        seqs[task.user_id] = seq + 1
        outbox.record(task.user_id, protocol.reminder(seq, protocol.task_body(task), remind_at))
    await session.flush()
    # More may be due than this batch: other batches of candidates, or beyond the candidates looked at.
    full = len(candidates) > len(locked) or len(tasks) == max_reminders
    return Claim(users=len(locked), fired=len(tasks), full=full)


def _batches(candidates: Sequence[tuple[int, int]], *, max_users: int, max_reminders: int) -> Iterator[list[int]]:
    """Consecutive groups of (user id, due count) candidates: at most `max_users` users and, past the first
    user, at most `max_reminders` reminders each."""
    batch: list[int] = []
    reminders = 0
    for user_id, count in candidates:
        if batch and (len(batch) == max_users or reminders + count > max_reminders):
            yield batch
            batch, reminders = [], 0
        batch.append(int(user_id))
        reminders += int(count)
    if batch:
        yield batch

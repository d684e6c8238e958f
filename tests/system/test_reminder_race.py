"""Two real server processes sharing PostgreSQL and Redis race for the same due reminders: each fires exactly
once, reaches the user's sockets on both workers live, and a worker that dies leaves nothing unfired."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support import services
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env
from tests.support.timing import SCALE, TIMEOUT
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient

USERS = 3
PER_USER = 20


@pytest.fixture
async def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[ServerProcess]]:
    database = await services.create_postgres_database("reminder_race")
    logs = tmp_path_factory.mktemp("reminder-race")
    env = server_env(
        database_url=database.url,
        redis_url=redis_url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-reminders",
        shutdown_grace=0.5,
    )
    processes = [ServerProcess(port=free_port(), env=env, log_path=logs / f"{n}.log") for n in range(2)]
    try:
        for process in processes:  # one after the other: the first migrates
            await process.start()
        yield processes
    finally:
        for process in processes:
            await process.stop()
        await database.drop()


def due_after_setup(count: int) -> datetime:
    """A due time late enough for `count` reminders to be created first, even on a busy machine."""
    return datetime.now(UTC) + timedelta(seconds=max(3.0, 0.1 * count) * SCALE)


async def remind(base_url: str, user: AppUser, at: datetime, count: int) -> set[int]:
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as http:

        async def one(n: int) -> int:
            body = {"title": f"reminder {n}", "remind_at": at.isoformat()}
            response = await http.post(user.url("/tasks"), json=body, headers=user.headers)
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        return set(await asyncio.gather(*(one(n) for n in range(count))))


async def reminders_until(ws: WSClient, expected: int) -> list[dict[str, Any]]:
    frames = [await ws.receive("reminder", timeout=TIMEOUT * 3) for _ in range(expected)]
    await ws.expect_nothing("reminder")
    return frames


async def test_both_workers_race_and_every_reminder_fires_once(workers: list[ServerProcess]) -> None:
    first, second = workers
    people = [await signup(first.base_url) for _ in range(USERS)]
    sockets = [
        (await WSClient.open(first.ws_url, person.token), await WSClient.open(second.ws_url, person.token))
        for person in people
    ]
    try:
        due = due_after_setup(USERS * PER_USER)  # both workers sleep until this very instant
        created = await asyncio.gather(*(remind(first.base_url, person, due, PER_USER) for person in people))
        expected = {person.id: ids for person, ids in zip(people, created, strict=True)}
        received = await asyncio.gather(*(reminders_until(ws, PER_USER) for pair in sockets for ws in pair))
    finally:
        for pair in sockets:
            for ws in pair:
                await ws.close()
    for index, person in enumerate(people):
        on_first, on_second = received[2 * index], received[2 * index + 1]
        assert on_first == on_second  # the same frames, in the same order, on either worker
        assert Counter(frame["task"]["id"] for frame in on_first) == Counter(expected[person.id])
        seqs = [frame["seq"] for frame in on_first]
        assert seqs == sorted(seqs) and len(set(seqs)) == PER_USER
    # The log agrees: a socket replaying everything finds each reminder once.
    async with await WSClient.open(second.ws_url, people[0].token, via="frame", after_seq=0) as replay:
        replayed = await reminders_until(replay, PER_USER)
    assert sorted(frame["task"]["id"] for frame in replayed) == sorted(expected[people[0].id])


async def test_a_dead_worker_leaves_its_share_to_the_other(workers: list[ServerProcess]) -> None:
    first, second = workers
    person = await signup(second.base_url)
    async with await WSClient.open(second.ws_url, person.token) as ws:
        await first.stop(signal.SIGKILL)  # no goodbye: whatever it held is rolled back by PostgreSQL
        ids = await remind(second.base_url, person, due_after_setup(PER_USER), PER_USER)
        frames = await reminders_until(ws, PER_USER)
    assert sorted(frame["task"]["id"] for frame in frames) == sorted(ids)

"""What must still hold after any fault: the checks every fault scenario ends with.

A `Follower` is one logical client of a user: a socket that is reopened after each fault and
resumes after the last seq it saw, keeping every frame it received across its sockets. `check`
then compares what the followers were told with what the database kept:

- every acked message is stored exactly once, under the id its ack named;
- every message refused for good (`overloaded`, `busy`, `rate_limited`) is not stored;
- every started turn ended: the event log has exactly one `turn.end` per `turn.start`, and no
  turn is left registered as running;
- each user's event log is gap-free (seqs 1..last_seq), and each follower's frames are too:
  in order, nothing twice, nothing missing across reconnects, and each frame is the one the log
  holds for that user and seq (so nothing foreign and no phantom reached anyone);
- each socket greeted the user it authenticated.

`still_serving` proves a server takes a fresh user through a fresh turn after the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support import users
from tests.support.timing import QUIET, TIMEOUT, wait_until
from tests.support.users import AppUser
from tests.support.wsclient import WSClient

FINAL_REFUSALS = frozenset({"overloaded", "busy", "rate_limited"})
"""Error codes that mean "not accepted, nothing stored"; other errors (`unavailable`) may be retried."""


@dataclass(eq=False)
class Follower:
    """One user's client that keeps up through faults: reconnects, resumes, records everything."""

    user: AppUser
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every frame received, over every socket, in order."""
    greeted: list[int] = field(default_factory=list)
    """The user id of every socket's `hello`."""
    start_seq: int | None = None
    """The last seq before this follower's first socket: its frames start after it."""
    closes: list[int | None] = field(default_factory=list)
    """How each socket ended (its close code, None without one)."""
    ws: WSClient | None = None
    _pump: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        seqs = sequenced(self.frames)
        return seqs[-1] if seqs else (self.start_seq or 0)

    @property
    def connected(self) -> bool:
        return self._pump is not None and not self._pump.done()

    async def connect(self, url: str) -> None:
        """Open a socket at `url` (closing any previous one) and resume after the last seq seen."""
        await self.disconnect()
        # The replay is asked for up front, so it comes before anything live (a `resume` frame sent
        # after `hello` would replay after the live events the socket had already sent).
        resuming = self.start_seq is not None
        ws = await WSClient.open(f"{url}?after_seq={self.last_seq}" if resuming else url, self.user.token)
        self.greeted.append(int(ws.hello["user_id"]))
        if self.start_seq is None:
            self.start_seq = int(ws.hello["last_seq"])
        self.ws = ws
        self._pump = asyncio.create_task(self._read(ws))

    async def reconnect(self, urls: list[str], *, timeout: float = TIMEOUT * 3) -> None:
        """Connect to the first of `urls` that accepts, retrying (with the backoff a client has) until one does."""

        async def attempt() -> bool:
            for url in urls:
                try:
                    await self.connect(url)
                    return True
                except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake):
                    continue
            return False

        await wait_until(attempt, timeout=timeout, step=0.2)

    async def _read(self, ws: WSClient) -> None:
        try:
            while True:
                frame = await ws.next(timeout=3600)
                self.frames.append(frame)
        except ConnectionClosed as exc:
            self.closes.append(exc.rcvd.code if exc.rcvd else None)
        except (OSError, TimeoutError):
            self.closes.append(None)

    async def disconnect(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(OSError, ConnectionClosed):
                await asyncio.wait_for(self.ws.close(), TIMEOUT)
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self.ws, self._pump = None, None

    async def chat(self, text: str, conversation_id: int | None = None, client_msg_id: str | None = None) -> str:
        """Send a chat frame on the current socket; the answer (ack or error) arrives in `frames`."""
        assert self.ws is not None, "not connected"
        return await self.ws.chat(text, conversation_id=conversation_id, client_msg_id=client_msg_id)

    def find(self, type: str, **match: Any) -> dict[str, Any] | None:
        for frame in self.frames:
            if frame["type"] == type and all(frame.get(k) == v for k, v in match.items()):
                return frame
        return None

    async def wait_for(self, type: str, *, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        await wait_until(lambda: self.find(type, **match) is not None, timeout=timeout)
        found = self.find(type, **match)
        assert found is not None
        return found

    async def expect_nothing(self, type: str | None = None, *, timeout: float = QUIET) -> None:
        """Assert that no frame (of `type`) arrives within `timeout` (listening is the only way to know)."""
        start = len(self.frames)

        def late() -> list[dict[str, Any]]:
            return [f for f in self.frames[start:] if type is None or f["type"] == type]

        with contextlib.suppress(TimeoutError):
            await wait_until(lambda: bool(late()), timeout=timeout)
        assert not late(), f"unexpected frames {late()}"

    async def answer(self, client_msg_id: str, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The `ack` or `error` that answered `client_msg_id`."""

        def answered() -> dict[str, Any] | None:
            return self.find("ack", client_msg_id=client_msg_id) or self.find("error", ref=client_msg_id)

        await wait_until(lambda: answered() is not None, timeout=timeout)
        found = answered()
        assert found is not None
        return found

    def forget(self, answer: dict[str, Any]) -> None:
        """Drop an `error` answer, so that a retry of its message (same client_msg_id) is answered afresh."""
        self.frames.remove(answer)

    @property
    def acks(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "ack"]

    @property
    def refused(self) -> set[str]:
        """client_msg_ids refused for good and never acked."""
        acked = {a["client_msg_id"] for a in self.acks}
        return {f["ref"] for f in self.frames if f["type"] == "error" and f.get("code") in FINAL_REFUSALS} - acked


def sequenced(frames: list[dict[str, Any]]) -> list[int]:
    """The seqs of the logged events among `frames` (an ack's seq names its message event, not itself)."""
    return [f["seq"] for f in frames if f.get("seq") is not None and f["type"] != "ack"]


@dataclass
class Report:
    """What `check` counted: for the soak's results and for assertions on scale."""

    users: int = 0
    acked: int = 0
    refused: int = 0
    turns: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    events: int = 0
    frames_checked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "statuses": dict(self.statuses)}


async def check(dsn: str, followers: list[Follower], *, settle: float = TIMEOUT * 3) -> Report:
    """Assert every invariant over `followers`' users in the database at `dsn` (asyncpg form).

    First waits up to `settle` seconds for every running turn of those users to end (a dead
    worker's turns end only once its lease runs out) and for the followers still connected to
    have received everything logged for their user.
    """
    report = Report()
    by_user: dict[int, list[Follower]] = {}
    for follower in followers:
        by_user.setdefault(follower.user.id, []).append(follower)
    user_ids = list(by_user)
    report.users = len(user_ids)
    connection = await asyncpg.connect(dsn, timeout=TIMEOUT)
    try:

        async def settled() -> bool:
            running = await connection.fetchval("SELECT count(*) FROM turns WHERE user_id = ANY($1)", user_ids)
            if running:
                return False
            last = dict(await connection.fetch("SELECT id, last_seq FROM users WHERE id = ANY($1)", user_ids))
            return all(f.last_seq >= last[f.user.id] for f in followers if f.connected)

        await wait_until(settled, timeout=settle, step=0.1)
        for user_id, mine in by_user.items():
            _check_user(
                user_id,
                mine,
                last_seq=await connection.fetchval("SELECT last_seq FROM users WHERE id = $1", user_id),
                log={
                    row["seq"]: row["frame"]
                    for row in await connection.fetch("SELECT seq, frame FROM events WHERE user_id = $1", user_id)
                },
                messages=await connection.fetch(
                    "SELECT id, client_msg_id FROM messages WHERE user_id = $1 AND role = 'user'", user_id
                ),
                report=report,
            )
    finally:
        await connection.close()
    return report


def _check_user(
    user_id: int,
    followers: list[Follower],
    *,
    last_seq: int,
    log: dict[int, str],
    messages: list[asyncpg.Record],
    report: Report,
) -> None:
    # The user's event log: gap-free, each turn started once and ended once.
    assert sorted(log) == list(range(1, last_seq + 1)), f"user {user_id}: the event log has gaps"
    report.events += len(log)
    events = {seq: orjson.loads(text) for seq, text in log.items()}
    starts = Counter(e["turn_id"] for e in events.values() if e["type"] == "turn.start")
    ends = Counter(e["turn_id"] for e in events.values() if e["type"] == "turn.end")
    assert all(n == 1 for n in starts.values()), f"user {user_id}: a turn started twice: {starts}"
    assert starts == ends, f"user {user_id}: turns started {dict(starts)} but ended {dict(ends)}"
    report.turns += len(starts)
    report.statuses.update(e["status"] for e in events.values() if e["type"] == "turn.end")
    # What was acked is stored exactly once, under its ack's id; what was refused is not stored.
    stored = Counter(row["client_msg_id"] for row in messages)
    ids = {row["client_msg_id"]: row["id"] for row in messages}
    for follower in followers:
        for ack in follower.acks:
            times = stored[ack["client_msg_id"]]
            assert times == 1, f"acked {ack['client_msg_id']} stored {times} times"
            assert ids[ack["client_msg_id"]] == ack["message_id"], f"ack {ack} names another message"
        report.acked += len({a["client_msg_id"] for a in follower.acks})
        for refused in follower.refused:
            assert stored[refused] == 0, f"refused {refused} was stored"
        report.refused += len(follower.refused)
        # Each follower: gap-free and duplicate-free across its sockets, and only this user's events.
        assert follower.greeted and set(follower.greeted) == {user_id}, f"greeted as {follower.greeted}"
        seqs = sequenced(follower.frames)
        start = follower.start_seq or 0
        assert seqs == list(range(start + 1, start + 1 + len(seqs))), (
            f"user {user_id}: a follower's seqs have gaps or repeats after {start}: {_gaps(seqs, start)}"
        )
        for frame in follower.frames:
            if frame.get("seq") is not None and frame["type"] != "ack":
                assert frame == events.get(frame["seq"]), f"user {user_id}: {frame} is not the logged event"
        report.frames_checked += len(seqs)


def _gaps(seqs: list[int], start: int) -> str:
    expected = set(range(start + 1, max(seqs, default=start) + 1))
    repeats = [s for s, n in Counter(seqs).items() if n > 1]
    disorder = next((i for i in range(1, len(seqs)) if seqs[i] <= seqs[i - 1]), None)
    around = seqs[max(0, disorder - 5) : disorder + 5] if disorder is not None else []
    return f"missing {sorted(expected - set(seqs))[:10]}, repeated {repeats[:10]}, out of order around {around}"


async def still_serving(base_url: str, ws_url: str, *, timeout: float = TIMEOUT * 2) -> dict[str, Any]:
    """A fresh user signs up and a fresh turn runs to `done`: the server recovered. Returns its turn.end."""
    user = await users.signup(base_url)
    async with await WSClient.open(ws_url, user.token) as ws:
        client_msg_id = await ws.chat(f"still there? {secrets.token_hex(3)}")
        ack = await ws.receive("ack", timeout=timeout)
        assert ack["client_msg_id"] == client_msg_id
        end = await ws.receive("turn.end", turn_id=ack["turn_id"], timeout=timeout)
    assert end["status"] == "done", end
    return end

"""A socket's writer: in-order delivery by seq, duplicates dropped, and the slow-consumer policy."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from server.auth.tokens import TokenClaims
from server.errors import CloseCode
from server.realtime.envelope import Envelope
from server.ws.connection import Connection, Limits
from tests.support.timing import TIMEOUT, wait_until


class FakeSocket:
    """Records what the writer sends; `gate` lets a test play a client that stopped reading."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.count = asyncio.Condition()

    async def send_text(self, text: str) -> None:
        await self.gate.wait()
        async with self.count:
            self.sent.append(orjson.loads(text))
            self.count.notify_all()

    async def wait_for(self, n: int) -> None:
        async with self.count:
            await asyncio.wait_for(self.count.wait_for(lambda: len(self.sent) >= n), TIMEOUT)


class FakeLog:
    """The event log: the events a test says were committed."""

    def __init__(self, events: dict[int, str] | None = None) -> None:
        self.events = events or {}
        self.reads = 0

    async def last_seq(self, user_id: int) -> int:
        return max(self.events, default=0)

    async def read_after(
        self, user_id: int, after_seq: int, *, limit: int, up_to: int | None = None
    ) -> Sequence[tuple[int, str]]:
        self.reads += 1
        rows = sorted((seq, text) for seq, text in self.events.items() if seq > after_seq)
        return [row for row in rows if up_to is None or row[0] <= up_to][:limit]


def connection(socket: FakeSocket, log: FakeLog | None = None, *, send_queue: int = 1024) -> Connection:
    now = datetime.now(UTC)
    claims = TokenClaims(user_id=1, session_id="s", issued_at=now, expires_at=now + timedelta(minutes=5), token_id="t")
    limits = Limits(
        send_queue=send_queue,
        rate_per_second=20,
        rate_burst=40,
        idle_timeout=300,
        max_frame_bytes=131072,
        resume_max_events=5000,
    )
    return Connection(
        socket,  # type: ignore[arg-type]
        claims=claims,
        connection_id="c",
        chat=None,  # type: ignore[arg-type]
        hub=None,  # type: ignore[arg-type]
        log=log or FakeLog(),
        authenticate=None,  # type: ignore[arg-type]
        session_alive=None,  # type: ignore[arg-type]
        limits=limits,
    )


def event(seq: int | None, kind: str = "task.created") -> Envelope:
    frame: dict[str, Any] = {"type": kind}
    if seq is not None:
        frame["seq"] = seq
    return Envelope.event(frame)


async def test_events_are_sent_in_seq_order_once() -> None:
    socket = FakeSocket()
    conn = connection(socket)
    writer = asyncio.create_task(conn._write_loop())
    for envelope in (event(2), event(1), event(1), event(None, "delta"), event(3), event(2)):
        conn.deliver(envelope)
    await socket.wait_for(4)
    writer.cancel()
    assert [(f["type"], f.get("seq")) for f in socket.sent] == [
        ("task.created", 1),
        ("task.created", 2),
        ("delta", None),
        ("task.created", 3),
    ]


async def test_slow_consumer_gets_resync_and_is_closed_even_while_its_writer_is_stuck() -> None:
    socket = FakeSocket()
    socket.gate.clear()  # the client stopped reading: the writer blocks on its first frame
    conn = connection(socket, send_queue=8)
    writer = asyncio.create_task(conn._write_loop())
    conn.deliver(event(1))
    await wait_until(lambda: conn._sending)  # the writer took event 1 and blocks writing it
    for seq in range(2, 50):
        conn.deliver(event(seq))
    assert len(conn._queue) == 0  # the backlog was dropped, not kept growing
    socket.gate.set()
    await asyncio.wait_for(writer, TIMEOUT)
    assert [f["type"] for f in socket.sent] == ["resync_required"]  # not the stuck frame: the client reloads
    assert socket.sent[0]["last_seq"] == 1  # the last event handed to the socket; the client reloads from REST
    assert conn._closing is not None and conn._closing[0] == CloseCode.TRY_AGAIN_LATER


async def test_a_gap_is_filled_from_the_log_even_while_other_events_keep_arriving() -> None:
    socket = FakeSocket()
    log = FakeLog({1: event(1).text, 2: event(2).text})  # committed, but never delivered live
    conn = connection(socket, log)
    writer = asyncio.create_task(conn._write_loop())
    conn.deliver(event(3))
    log.events[3] = event(3).text

    async def steady_deltas() -> None:
        # A stream of ephemeral frames faster than the gap wait must not postpone the fill forever.
        while log.reads == 0:
            conn.deliver(event(None, "delta"))
            await asyncio.sleep(0.02)

    await asyncio.wait_for(steady_deltas(), TIMEOUT)
    await socket.wait_for(3)
    await asyncio.sleep(0)
    writer.cancel()
    assert [f["seq"] for f in socket.sent if "seq" in f] == [1, 2, 3]


async def test_a_late_delta_of_an_ended_turn_is_dropped() -> None:
    """After a Redis outage a worker may publish a turn's deltas after its turn.end was replayed from the log."""
    socket = FakeSocket()
    conn = connection(socket)
    writer = asyncio.create_task(conn._write_loop())
    turn = "a" * 32
    end = Envelope.event({"type": "turn.end", "seq": 1, "turn_id": turn, "conversation_id": 1, "status": "done"})
    late = Envelope.event({"type": "delta", "turn_id": turn, "conversation_id": 1, "offset": 0, "text": "late"})
    other = Envelope.event({"type": "delta", "turn_id": "b" * 32, "conversation_id": 1, "offset": 0, "text": "live"})
    for envelope in (end, late, other):
        conn.deliver(envelope)
    await socket.wait_for(2)
    writer.cancel()
    assert [(f["type"], f.get("text")) for f in socket.sent] == [("turn.end", None), ("delta", "live")]

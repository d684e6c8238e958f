"""A socket's writer: in-order delivery by seq, duplicates dropped, and the slow-consumer policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from server.auth.tokens import TokenClaims
from server.errors import CloseCode
from server.realtime.envelope import Envelope
from server.ws.connection import Connection
from tests.support.settings import make_settings
from tests.support.timing import TIMEOUT


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


def connection(socket: FakeSocket, cls: type[Connection] = Connection, **settings: Any) -> Connection:
    now = datetime.now(UTC)
    claims = TokenClaims(user_id=1, session_id="s", issued_at=now, expires_at=now + timedelta(minutes=5), token_id="t")
    runtime = SimpleNamespace(settings=make_settings(**settings), chat=None)
    return cls(socket, runtime=runtime, claims=claims, connection_id="c")  # type: ignore[arg-type]


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


async def test_slow_consumer_gets_resync_and_is_closed() -> None:
    socket = FakeSocket()
    socket.gate.clear()  # the client stopped reading
    conn = connection(socket, ws_send_queue=8)
    writer = asyncio.create_task(conn._write_loop())
    for seq in range(1, 50):
        conn.deliver(event(seq))
    assert len(conn._queue) == 0  # the backlog was dropped, not kept growing
    socket.gate.set()
    await asyncio.wait_for(writer, TIMEOUT)
    assert [f["type"] for f in socket.sent] == ["resync_required"]
    assert socket.sent[0]["last_seq"] == 0
    assert conn._closing is not None and conn._closing[0] == CloseCode.TRY_AGAIN_LATER


async def test_a_gap_is_filled_even_while_other_events_keep_arriving() -> None:
    socket = FakeSocket()
    replayed = asyncio.Event()

    class LogConnection(Connection):
        __slots__ = ()

        async def _replay(self) -> None:  # stands in for the database read
            replayed.set()
            for seq in (1, 2):
                await self._send_text(event(seq).text)
                self._cursor = seq
            await self._release_held()

    conn = connection(socket, cls=LogConnection)
    writer = asyncio.create_task(conn._write_loop())
    conn.deliver(event(3))  # 1 and 2 never come live

    async def steady_deltas() -> None:
        # A stream of ephemeral frames faster than the gap wait must not postpone the fill forever.
        while not replayed.is_set():
            conn.deliver(event(None, "delta"))
            await asyncio.sleep(0.02)

    await asyncio.wait_for(asyncio.gather(replayed.wait(), steady_deltas()), TIMEOUT)
    await socket.wait_for(3)
    writer.cancel()
    assert [f["seq"] for f in socket.sent if "seq" in f] == [1, 2, 3]

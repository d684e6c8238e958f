"""The generator's side of the wire: REST signup, and picows sockets that timestamp every frame on arrival.

picows parses frames in C and calls `on_ws_frame` synchronously from the read callback, so the
arrival time is taken before any other Python work, and one client process can keep up with
tens of thousands of frames a second on a machine it shares with the servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import httpx
import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

Sink = Callable[["BenchSocket", dict[str, Any], float], None]
PASSWORD = "bench-password-1"  # noqa: S105  throwaway accounts in the bench database
CONNECT_TIMEOUT = 15.0
CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    token: str


class BenchSocket(WSListener):
    """One authenticated socket of one user; `role` says what the workload uses it for."""

    def __init__(self, *, user: int, role: str, sink: Sink | None = None) -> None:
        super().__init__()
        self.user = user
        self.role = role
        self.sink = sink
        self.transport: WSTransport | None = None
        self.hello: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.close_code: WSCloseCode | None = None
        self.bad_frames = 0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        now = perf_counter()
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            if not frame.fin:  # the server sends whole frames; a fragment would be misread below
                self.bad_frames += 1
                return
            data = orjson.loads(frame.get_payload_as_bytes())
            if data.get("type") == "hello" and not self.hello.done():
                self.hello.set_result(data)
            elif self.sink is not None:
                self.sink(self, data, now)
        elif kind == WSMsgType.CLOSE:
            self.close_code = code = frame.get_close_code()
            transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.hello.done():
            self.hello.set_exception(ConnectionError(f"closed before hello (code {self.close_code})"))

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, payload)

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self.transport.is_disconnected


async def signup(base_urls: Sequence[str], count: int, *, concurrency: int = 32) -> list[Account]:
    """`count` fresh accounts (unique emails per call), signed up round-robin across the workers."""
    run = secrets.token_hex(4)
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:

        async def one(index: int) -> Account:
            async with gate:
                response = await http.post(
                    f"{base_urls[index % len(base_urls)]}/api/auth/signup",
                    json={"email": f"bench-{run}-{index}@example.com", "password": PASSWORD},
                )
            response.raise_for_status()
            body = response.json()
            return Account(user_id=int(body["id"]), token=str(body["token"]))

        return list(await asyncio.gather(*(one(index) for index in range(count))))


async def connect(url: str, account: Account, *, user: int, role: str, sink: Sink | None = None) -> BenchSocket:
    """Open an authenticated socket (Authorization header) and wait for its `hello`."""
    _, listener = await ws_connect(
        lambda: BenchSocket(user=user, role=role, sink=sink),
        url,
        extra_headers={"Authorization": f"Bearer {account.token}"},
        websocket_handshake_timeout=CONNECT_TIMEOUT,
        read_buffer_init_size=4096,  # idle sockets by the ten thousand: keep the client small too
    )
    assert isinstance(listener, BenchSocket)
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await listener.hello
    return listener


async def connect_many(
    specs: Sequence[tuple[str, Account, int, str]], *, sink: Sink | None = None, concurrency: int = 100
) -> list[BenchSocket]:
    """Open sockets for (url, account, user, role) specs with bounded concurrency; fails if any fails."""
    gate = asyncio.Semaphore(concurrency)

    async def one(spec: tuple[str, Account, int, str]) -> BenchSocket:
        url, account, user, role = spec
        async with gate:
            return await connect(url, account, user=user, role=role, sink=sink)

    results = await asyncio.gather(*(one(spec) for spec in specs), return_exceptions=True)
    sockets = [result for result in results if isinstance(result, BenchSocket)]
    failures = [result for result in results if isinstance(result, BaseException)]
    if failures:
        await close_all(sockets)
        raise RuntimeError(f"{len(failures)} of {len(specs)} sockets failed to open; first: {failures[0]!r}")
    return sockets


async def close_all(sockets: Sequence[BenchSocket]) -> None:
    for sock in sockets:
        if sock.transport is not None and not sock.transport.is_disconnected:
            sock.transport.send_close(WSCloseCode.OK)
            sock.transport.disconnect()
    for sock in sockets:
        if sock.transport is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await sock.transport.wait_disconnected()

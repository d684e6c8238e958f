"""The production shape: the shipped `deploy/nginx.conf` in front of two `python -m server` processes, round robin,
no sticky sessions, on PostgreSQL behind PgBouncer (transaction mode) and Redis.

What it shows: WebSockets upgrade through the proxy; the app trusts X-Forwarded-For from the proxy only, so limits
count per real client; and a backend taken out (SIGTERM) and put back loses nothing acknowledged while the clients
on the other one carry on.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support import nginx, services, users
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env
from tests.support.timing import TIMEOUT, wait_until
from tests.support.wsclient import WSClient, seqs

PROXY = "127.0.0.1"
"""The address nginx connects to the backends from (their TRUSTED_PROXIES). Clients use other loopback addresses."""
REPLY = "r" * 240
"""About 30 echo chunks: a turn lasts long enough for a shutdown to find some running."""


@dataclass
class Balanced:
    proxy: nginx.Nginx
    backends: tuple[ServerProcess, ServerProcess]


@pytest.fixture(scope="module")
async def balanced(
    pgbouncer_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Balanced]:
    logs = tmp_path_factory.mktemp("balanced")
    env = server_env(
        database_url=pgbouncer_url,
        db_prepared_statements=False,
        auto_migrate=False,
        redis_url=redis_url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-balanced",
        trusted_proxies=[PROXY],
        shutdown_grace=0.5,
        rate_limit_login_ip="3/minute",
    )
    a = ServerProcess(port=free_port(), env=env, log_path=logs / "a.log")
    b = ServerProcess(port=free_port(), env=env, log_path=logs / "b.log")
    await a.start()
    await b.start()
    try:
        async with nginx.serve([a.port, b.port]) as proxy:
            yield Balanced(proxy=proxy, backends=(a, b))
    finally:
        await a.stop()
        await b.stop()


async def failed_login(base_url: str, *, source: str, forwarded_for: str | None = None) -> int:
    """A login with a wrong password from the loopback address `source`, claiming `forwarded_for`."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=TIMEOUT) as http:
        email = f"nobody-{secrets.token_hex(4)}@example.com"
        response = await http.post(
            "/api/auth/login", json={"email": email, "password": "not the password"}, headers=headers
        )
    return response.status_code


async def test_limits_count_per_real_client_and_a_forged_forwarded_for_is_not_believed(balanced: Balanced) -> None:
    proxy, (a, b) = balanced.proxy, balanced.backends
    # RATE_LIMIT_LOGIN_IP is 3 failures a minute. One client, a new forged address each time: one budget.
    for n in range(3):
        assert await failed_login(proxy.base_url, source="127.0.0.2", forwarded_for=f"198.51.100.{n}") == 401
    assert await failed_login(proxy.base_url, source="127.0.0.2", forwarded_for="198.51.100.9") == 429
    # Round robin sent them to both backends, which count in the same Redis.
    assert {served.rsplit(":", 1)[1] for served in proxy.upstreams("/api/auth/login")} == {str(a.port), str(b.port)}
    # Another client behind the same proxy has a budget of its own (not the proxy's address, shared by all).
    assert await failed_login(proxy.base_url, source="127.0.0.3") == 401
    # Straight to a backend, the header counts for nothing: the peer is not the proxy.
    assert await failed_login(a.base_url, source="127.0.0.2", forwarded_for="198.51.100.20") == 429
    # Even a client on the proxy's own (trusted) address cannot claim another one: nginx sets the header
    # to the address it saw instead of appending to the client's. (Appending, the app would believe it.)
    for n in range(3):
        assert await failed_login(proxy.base_url, source=PROXY, forwarded_for=f"198.51.100.{30 + n}") == 401
    assert await failed_login(proxy.base_url, source=PROXY, forwarded_for="198.51.100.40") == 429


@dataclass
class Chatter:
    """One user's socket through the balancer. It chats one turn at a time; when the socket closes it reconnects
    (wherever the balancer sends it), resumes after the last seq it saw and sends an unacknowledged message again
    (same client_msg_id), as the widget and the CLI do."""

    url: str
    token: str
    sockets: list[WSClient] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """By client_msg_id."""

    @property
    def frames(self) -> list[dict[str, Any]]:
        """Every frame of every socket, in order."""
        return [frame for socket in self.sockets for frame in socket.log]

    @property
    def last_seq(self) -> int:
        return max(seqs(self.frames), default=0)

    async def connect(self) -> None:
        after_seq = self.last_seq

        async def opened() -> bool:
            try:
                socket = await WSClient.open(self.url, self.token, via="frame", after_seq=after_seq)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                return False  # nginx found no backend up yet (502), or the one it chose went away
            self.sockets.append(socket)
            return True

        await wait_until(opened, timeout=TIMEOUT, step=0.05)

    def ended(self, turn_id: str) -> bool:
        return any(f["type"] == "turn.end" and f["turn_id"] == turn_id for f in self.frames)

    async def turn(self, message: str) -> None:
        """Send `message` and wait for its turn to end, across as many reconnects as that takes."""
        client_msg_id = secrets.token_hex(8)
        async with asyncio.timeout(TIMEOUT * 2):
            while True:
                socket = self.sockets[-1]
                try:
                    if client_msg_id not in self.acks:
                        await socket.chat(message, client_msg_id=client_msg_id)
                        while (frame := await socket.next())["type"] != "ack":
                            assert frame["type"] != "error", frame
                        assert frame["client_msg_id"] == client_msg_id, frame
                        self.acks[client_msg_id] = frame
                    turn_id = self.acks[client_msg_id]["turn_id"]
                    while not self.ended(turn_id):
                        await socket.next()
                    return
                except ConnectionClosed as exc:
                    self.closes.append(exc.rcvd.code if exc.rcvd else None)
                    await self.connect()

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.close()


async def lands_on(proxy: nginx.Nginx, token: str, port: int) -> bool:
    """Open a socket through the balancer and close it: did it land on the backend at `port`?"""
    before = len(proxy.upstreams("/api/ws"))
    async with await WSClient.open(proxy.ws_url, token):
        pass
    await wait_until(lambda: len(proxy.upstreams("/api/ws")) > before)  # logged once closed
    return proxy.upstreams("/api/ws")[-1].endswith(f":{port}")


async def test_a_backend_taken_out_and_put_back_loses_nothing(balanced: Balanced) -> None:
    proxy, a = balanced.proxy, balanced.backends[0]
    people = [await users.signup(proxy.base_url) for _ in range(4)]
    prober = await users.signup(proxy.base_url)
    chatters = [Chatter(proxy.ws_url, person.token) for person in people]
    for chatter in chatters:  # back to back, so round robin puts them on alternate backends
        await chatter.connect()
    stop = asyncio.Event()

    async def keep_chatting(chatter: Chatter) -> None:
        n = 0
        while not stop.is_set():
            await chatter.turn(f"{n} {REPLY}")
            n += 1

    traffic = [asyncio.create_task(keep_chatting(chatter)) for chatter in chatters]
    try:
        await wait_until(lambda: all(len(c.acks) >= 2 for c in chatters))

        # Out: SIGTERM. Its sockets get 1012 and reconnect through nginx to the other backend.
        assert await a.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        before = [len(c.acks) for c in chatters]
        await wait_until(lambda: all(len(c.acks) >= n + 2 for c, n in zip(chatters, before, strict=True)))
        moved = [c for c in chatters if c.closes]
        stayed = [c for c in chatters if not c.closes]
        assert moved and stayed, "round robin should have put sockets on both backends"
        assert all(c.closes == [1012] for c in moved), [c.closes for c in moved]
        assert all(len(c.sockets) == 1 for c in stayed)  # the other backend's clients never noticed

        # Back in: once nginx's fail_timeout for it has passed, new connections spread to it again.
        await a.start()
        await wait_until(lambda: lands_on(proxy, prober.token, a.port), timeout=TIMEOUT * 2, step=0.2)
        assert not all([await lands_on(proxy, prober.token, a.port) for _ in range(2)])  # round robin, not all to it
        counts = [len(c.acks) for c in chatters]
        await wait_until(lambda: all(len(c.acks) > n for c, n in zip(chatters, counts, strict=True)))
    finally:
        stop.set()
        await asyncio.gather(*traffic)
        for chatter in chatters:
            await chatter.close()

    for chatter in chatters:
        received = seqs(chatter.frames)
        assert received == list(range(1, received[-1] + 1))  # every event once, in order, across reconnects
        messages = {f["message"]["id"] for f in chatter.frames if f["type"] == "message"}
        assert {ack["message_id"] for ack in chatter.acks.values()} <= messages
        assert all(chatter.ended(ack["turn_id"]) for ack in chatter.acks.values())

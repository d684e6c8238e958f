"""WS_MAX_PER_USER: the socket past the cap closes with 4429; other users are not affected; a freed slot is reusable."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.app import create_app
from server.errors import CloseCode
from tests.support import users
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import wait_until
from tests.support.wsclient import WSClient

CAP = 3


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'cap.db'}", ws_max_per_user=CAP)
    async with serve_in_process(create_app(settings)) as live:
        yield live


async def test_the_socket_past_the_cap_closes_4429_and_a_freed_slot_is_reusable(capped: LiveServer) -> None:
    alice, bob = await users.signup(capped.base_url), await users.signup(capped.base_url)
    async with contextlib.AsyncExitStack() as stack:
        mine = [await stack.enter_async_context(await WSClient.open(capped.ws_url, alice.token)) for _ in range(CAP)]
        refused = await WSClient.open(capped.ws_url, alice.token, expect_hello=False)
        assert await refused.next_or_close() == CloseCode.TOO_MANY  # closed, not greeted
        # Another user is not counted against alice's cap.
        async with await WSClient.open(capped.ws_url, bob.token) as other:
            assert other.hello["user_id"] == bob.id
        # The sockets within the cap still work.
        for ws in mine:
            await ws.send({"type": "ping", "id": "still"})
            await ws.receive("pong", id="still")
        # One of alice's sockets closes: its slot is free again (once the server has seen the close).
        await mine.pop().close()

        async def admitted() -> bool:
            candidate = await WSClient.open(capped.ws_url, alice.token, expect_hello=False)
            frame = await candidate.next_or_close()
            if isinstance(frame, dict) and frame["type"] == "hello":
                stack.push_async_callback(candidate.close)
                return True
            assert frame == CloseCode.TOO_MANY, frame
            return False

        await wait_until(admitted)
        # And the cap holds again at CAP.
        again = await WSClient.open(capped.ws_url, alice.token, expect_hello=False)
        assert await again.next_or_close() == CloseCode.TOO_MANY

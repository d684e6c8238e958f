"""A client that stops reading is told `resync_required` and closed (1013); the server's memory stays bounded."""

from __future__ import annotations

from pathlib import Path

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.app import create_app
from server.realtime.envelope import Envelope
from tests.support.live import serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import TIMEOUT, wait_until
from tests.support.users import signup


async def test_slow_consumer_is_resynced_and_closed(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/slow.db", ws_send_queue=8)
    async with serve_in_process(create_app(settings)) as live:
        user = await signup(live.base_url)
        # max_queue=1: the client library stops reading the socket as soon as one frame waits.
        async with connect(
            live.ws_url, additional_headers={"Authorization": f"Bearer {user.token}"}, max_queue=1
        ) as ws:
            assert orjson.loads(await ws.recv())["type"] == "hello"
            big = "x" * 200_000
            for offset in range(200):  # ~40 MB of deltas the client never reads
                envelope = Envelope.event({"type": "delta", "turn_id": "t", "offset": offset, "text": big})
                live.runtime.hub.publish(user.id, [envelope])
            await wait_until(lambda: live.runtime.hub.sockets_of(user.id) == 0, timeout=TIMEOUT * 3)
            last = None
            try:
                while True:
                    last = orjson.loads(await ws.recv())
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1013
        assert last is not None and last["type"] == "resync_required"

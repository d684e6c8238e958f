"""A worker dies mid-turn (SIGKILL): another worker ends its turns as interrupted, keeping the partial reply."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from server.chat.turns import CHECKPOINT_AFTER
from tests.support import services, users
from tests.support.live import ServerProcess, free_port
from tests.support.settings import server_env
from tests.support.timing import TIMEOUT
from tests.support.wsclient import WSClient

LEASE = 2.0
HEARTBEAT = 0.25
SLOW_ECHO = 0.02
"""Seconds between the echo provider's 8-character chunks: a 2,000-character reply takes 5 s."""


@pytest.fixture
def env(postgres_url: str, redis_url: str) -> dict[str, str]:
    return server_env(
        database_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=f"todochat-test-{services.RUN_ID}-death",
        worker_lease=LEASE,
        worker_heartbeat=HEARTBEAT,
        echo_chunk_delay=SLOW_ECHO,
    )


async def test_a_killed_workers_turn_ends_interrupted_and_frees_the_conversation(
    env: dict[str, str], tmp_path: Path
) -> None:
    doomed = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "doomed.log")
    survivor = ServerProcess(port=free_port(), env=env, log_path=tmp_path / "survivor.log")
    await doomed.start()
    await survivor.start()
    try:
        user = await users.signup(survivor.base_url)
        async with await WSClient.open(survivor.ws_url, user.token) as watcher:
            sender = await WSClient.open(doomed.ws_url, user.token)
            await sender.chat("z" * 2000)
            ack = await sender.receive("ack")
            # Stream long enough for the doomed worker to checkpoint part of the reply with its lease.
            started, streamed = time.monotonic(), 0
            while time.monotonic() - started < CHECKPOINT_AFTER + 3 * HEARTBEAT:
                streamed += len((await watcher.receive("delta", turn_id=ack["turn_id"]))["text"])
            assert doomed.process is not None
            doomed.process.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            end = await watcher.receive("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT + LEASE * 3)
            ended_after = time.monotonic() - killed_at
            [reply] = [
                f
                for f in watcher.log
                if f["type"] == "message"
                and f["message"]["role"] == "assistant"
                and f["message"]["turn_id"] == ack["turn_id"]
            ]
            await sender.connection.close()
            assert end["status"] == "interrupted" and end["reason"]
            assert ended_after < LEASE + 3  # freed within a few seconds of the death, not a lock's TTL
            assert reply["message"]["status"] == "interrupted"
            partial = reply["message"]["content"]
            expected = "Echo: " + "z" * 2000
            assert partial and expected.startswith(partial) and len(partial) <= streamed + 400
            # The conversation is free again: the next message starts a turn on the survivor.
            await watcher.chat("after the death", conversation_id=ack["conversation_id"])
            again = await watcher.receive("ack")
            done = await watcher.receive("turn.end", turn_id=again["turn_id"], timeout=TIMEOUT * 2)
            assert done["status"] == "done"
        received = [f["seq"] for f in watcher.log if "seq" in f and f["type"] != "ack"]
        assert received == sorted(set(received))  # in order, nothing twice
        async with httpx.AsyncClient(base_url=survivor.base_url, headers=user.headers) as http:
            history = (await http.get(user.url(f"/conversations/{ack['conversation_id']}/messages"))).json()["data"]
        assert [(m["role"], m.get("status")) for m in history] == [
            ("user", None),
            ("assistant", "interrupted"),
            ("user", None),
            ("assistant", "done"),
        ]
    finally:
        await doomed.stop()
        await survivor.stop()

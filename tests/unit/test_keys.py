"""A user's Redis names share one hash tag: on a Redis Cluster their channel and counters are in one slot."""

from __future__ import annotations

from typing import Any

from limits import parse
from redis.crc import key_slot

from server.keys import user_tag
from server.realtime.broker.memory import MemoryBroker
from server.realtime.envelope import Envelope, encode_batch
from server.realtime.hub import Hub


def slot(name: str) -> int:
    return key_slot(name.encode())


def test_a_users_channel_and_rate_limit_counters_share_a_slot() -> None:
    hub = Hub(MemoryBroker(), prefix="todochat")
    assert hub.channel(42) == "todochat:{user:42}"
    # How `limits` names a moving-window counter under the storage's prefix (server/abuse/storage.py).
    rate = parse("30/minute")
    counters = [f"todochat:limits:{rate.key_for(name, user_tag(42))}" for name in ("chat_turns", "tool_calls")]
    assert {slot(name) for name in counters} == {slot(hub.channel(42))}
    assert len({slot(hub.channel(user_id)) for user_id in range(1, 101)}) > 90  # users spread over the slots


def test_the_hub_reads_the_user_back_from_a_tagged_channel_only() -> None:
    hub = Hub(MemoryBroker(), prefix="todochat")
    seen: list[tuple[int, dict[str, Any]]] = []
    hub.on_control(lambda user_id, message: seen.append((user_id, message)))
    batch = encode_batch("another-worker", [Envelope.command({"type": "cancel"})])
    for channel in (hub.channel(7), "todochat:{user:7", "todochat:user:7", "todochat:{user:x}"):
        hub.on_message(channel, batch)
    assert seen == [(7, {"type": "cancel"})]

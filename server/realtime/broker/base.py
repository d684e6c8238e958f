"""The Broker protocol: publish bytes to a channel, and deliver subscribed channels to one listener.

A process has ONE broker and ONE listener (the hub). Subscriptions are per channel and
reference-counted by the hub, so a worker holds a single pub/sub connection (one per shard on a
Redis Cluster) however many sockets it serves. Implementations: :mod:`.memory` (one process),
:mod:`.redis` and :mod:`.cluster` (sharded pub/sub).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class BrokerListener(Protocol):
    def on_message(self, channel: str, data: bytes) -> None:
        """Called in the event loop for every message on a subscribed channel; must not block."""

    def on_reconnected(self) -> None:
        """The broker lost its connection and is back: messages in between may be missing."""


class Broker(Protocol):
    async def start(self, listener: BrokerListener) -> None: ...

    async def stop(self) -> None: ...

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish (channel, message) pairs in order, in one round trip where the broker allows;
        raises `BrokerError` when the broker is unreachable or does not answer in time."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def ping(self) -> None:
        """Raise `BrokerError` unless the broker answers (readiness probe)."""


class BrokerError(Exception):
    """The broker could not be reached."""

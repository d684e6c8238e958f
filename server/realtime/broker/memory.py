"""In-process broker for the embedded default: one worker, no network."""

from __future__ import annotations

from collections.abc import Sequence

from server.realtime.broker.base import BrokerListener


class MemoryBroker:
    def __init__(self) -> None:
        self._listener: BrokerListener | None = None
        self._channels: set[str] = set()

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener

    async def stop(self) -> None:
        self._listener = None
        self._channels.clear()

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        if self._listener is None:
            return
        for channel, data in messages:
            if channel in self._channels:
                self._listener.on_message(channel, data)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def ping(self) -> None:
        return None

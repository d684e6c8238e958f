"""A turn's reply text as `delta` frames: coalesced to at most one per interval, whatever the model's token rate.

A delta is ephemeral (no seq, not logged): a socket that reconnects mid-turn gets the rest of
the deltas and then the whole reply in the final `message`. Text not yet sent when the turn
ends goes out with the turn's last events, in the same publish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson

from server import protocol
from server.db.outbox import PendingEvent

DELTA_INTERVAL = 0.04
"""Coalescing window: at most ~25 `delta` frames a second per turn."""


class DeltaStream:
    __slots__ = ("_conversation_id", "_interval", "_offset", "_pending", "_publish", "_timer", "_turn_id")

    def __init__(
        self,
        publish: Callable[[PendingEvent], None],
        *,
        turn_id: str,
        conversation_id: int,
        interval: float = DELTA_INTERVAL,
    ) -> None:
        self._publish = publish
        self._turn_id = turn_id
        self._conversation_id = conversation_id
        self._interval = interval
        self._pending: list[str] = []
        self._offset = 0
        self._timer: asyncio.TimerHandle | None = None

    def push(self, text: str) -> None:
        self._pending.append(text)
        if self._timer is None:  # a timer, not a task: a turn that ends within the window costs nothing
            self._timer = asyncio.get_running_loop().call_later(self._interval, self.flush)

    def flush(self) -> None:
        """Publish what is pending now (before a tool call, so its text comes first)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if (event := self._take()) is not None:
            self._publish(event)

    def close(self) -> list[PendingEvent]:
        """Stop; the text not yet sent comes back, to go out with the turn's last events."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        event = self._take()
        return [event] if event is not None else []

    def _take(self) -> PendingEvent | None:
        if not self._pending:
            return None
        text = "".join(self._pending)
        self._pending.clear()
        frame = protocol.delta(self._turn_id, self._conversation_id, self._offset, text)
        self._offset += len(text)
        return PendingEvent(orjson.dumps(frame).decode())

"""This process's sockets by user, and the bridge between them and the broker.

One broker subscription per user channel, reference-counted across the sockets and running
turns of that user in this process. Delivery to a socket never blocks: each subscriber owns a
bounded queue and its own overflow policy (see `Connection` in `ws/connection.py`).

Besides the user channels, every worker subscribes from `start()` to ONE control channel,
`{prefix}:control`, for what every worker must hear whoever it serves (a session that ended:
each worker's session cache forgets it). Its traffic is a few small messages per logout, not
per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson

from server.db.outbox import Pending
from server.realtime.broker.base import Broker, BrokerError
from server.realtime.envelope import Envelope

logger = logging.getLogger(__name__)

ControlHandler = Callable[[int, dict[str, Any]], None]
BroadcastHandler = Callable[[dict[str, Any]], None]


class Subscriber(Protocol):
    def deliver(self, envelope: Envelope) -> None:
        """Take one event for the socket without blocking."""

    def catch_up(self) -> None:
        """The broker reconnected: fetch from the database whatever may have been missed."""

    def control(self, message: dict[str, Any]) -> None:
        """A control message for this user's sockets (a session ended); must not block."""


class Hub:
    def __init__(self, broker: Broker, *, prefix: str) -> None:
        self._broker = broker
        self._prefix = f"{prefix}:user:"
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._interest: dict[int, int] = {}
        self._ready: dict[int, asyncio.Event] = {}
        self._control: list[ControlHandler] = []
        self.control_channel = f"{prefix}:control"
        self._broadcast: list[BroadcastHandler] = []
        self._reconnect: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Subscribe the control channel (the broker must be started, with this hub as its listener)."""
        await self._broker.subscribe(self.control_channel)

    def channel(self, user_id: int) -> str:
        return f"{self._prefix}{user_id}"

    def on_control(self, handler: ControlHandler) -> None:
        """Register a handler for worker-to-worker control messages (e.g. `cancel`)."""
        self._control.append(handler)

    def on_broadcast(self, handler: BroadcastHandler) -> None:
        """Register a handler for messages on the control channel, from every worker (this one included)."""
        self._broadcast.append(handler)

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        """Register a callback for a broker reconnect: control messages in between may be lost."""
        self._reconnect.append(handler)

    def sockets_of(self, user_id: int) -> int:
        return len(self._subscribers.get(user_id, ()))

    @asynccontextmanager
    async def interest(self, user_id: int, subscriber: Subscriber | None = None) -> AsyncIterator[None]:
        """Receive `user_id`'s channel while inside; with a subscriber, its events are delivered to it.

        On entry the subscription is active in the broker, so anything published afterwards
        arrives; the caller reads the database after entering to close the window before it.
        """
        if subscriber is not None:
            self._subscribers.setdefault(user_id, set()).add(subscriber)
        count = self._interest.get(user_id, 0)
        self._interest[user_id] = count + 1
        try:
            if count == 0:
                ready = self._ready[user_id] = asyncio.Event()
                try:
                    await self._broker.subscribe(self.channel(user_id))
                finally:
                    ready.set()
                    del self._ready[user_id]  # only needed while subscribing: not kept per user
            elif (pending := self._ready.get(user_id)) is not None:
                await pending.wait()
            yield
        finally:
            if subscriber is not None:
                subs = self._subscribers.get(user_id)
                if subs is not None:
                    subs.discard(subscriber)
                    if not subs:
                        del self._subscribers[user_id]
            self._interest[user_id] -= 1
            if self._interest[user_id] == 0:
                del self._interest[user_id]
                await self._broker.unsubscribe(self.channel(user_id))

    async def publish(self, user_id: int, envelopes: Sequence[Envelope]) -> bool:
        """Publish to every worker; False when the broker is away.

        Then this worker's own sockets (and turns, for `cancel`) still get the events directly;
        other workers replay them from the event log when their broker reconnects.
        """
        if not envelopes:
            return True
        channel = self.channel(user_id)
        messages = [envelope.encode() for envelope in envelopes]
        try:
            await self._broker.publish(channel, messages)
        except BrokerError as exc:
            logger.warning("Could not publish %d event(s) for user %s: %s", len(envelopes), user_id, exc)
            for data in messages:
                self.on_message(channel, data)
            return False
        return True

    async def publish_pending(self, pending: Pending) -> None:
        """Publish committed events (an outbox's), user by user, each user's in order."""
        for user_id, events in pending.items():
            await self.publish(user_id, [Envelope(text=event.text, seq=event.seq) for event in events])

    async def send_control(self, user_id: int, message: dict[str, Any]) -> bool:
        return await self.publish(user_id, [Envelope.command(message)])

    async def broadcast(self, message: dict[str, Any]) -> bool:
        """Publish on the control channel, to every worker; False when the broker is away.

        Then this worker still handles it; the others miss it (callers bound what that costs).
        """
        data = Envelope.command(message).encode()
        try:
            await self._broker.publish(self.control_channel, [data])
        except BrokerError as exc:
            logger.warning("Could not broadcast %s to the other workers: %s", message.get("type"), exc)
            self.on_message(self.control_channel, data)
            return False
        return True

    def notify_subscribers(self, user_id: int, message: dict[str, Any]) -> None:
        """Hand a control message to this worker's subscribers (sockets) of `user_id`."""
        for subscriber in tuple(self._subscribers.get(user_id, ())):
            subscriber.control(message)

    # BrokerListener

    def on_message(self, channel: str, data: bytes) -> None:
        if channel == self.control_channel:
            self._on_broadcast(data)
            return
        if not channel.startswith(self._prefix):
            return
        try:
            user_id = int(channel[len(self._prefix) :])
            envelope = Envelope.decode(data)
        except ValueError:
            logger.warning("Ignoring a malformed broker message on %s", channel)
            return
        if envelope.control:
            message = orjson.loads(envelope.text)
            for handler in self._control:
                handler(user_id, message)
            return
        for subscriber in tuple(self._subscribers.get(user_id, ())):
            subscriber.deliver(envelope)

    def _on_broadcast(self, data: bytes) -> None:
        try:
            envelope = Envelope.decode(data)
            message = orjson.loads(envelope.text)
        except ValueError:
            logger.warning("Ignoring a malformed message on %s", self.control_channel)
            return
        if not envelope.control or not isinstance(message, dict):
            logger.warning("Ignoring a malformed message on %s", self.control_channel)
            return
        for handler in self._broadcast:
            handler(message)

    def on_reconnected(self) -> None:
        for callback in self._reconnect:  # first: the subscribers' catch-up may rely on it
            callback()
        for subs in self._subscribers.values():
            for subscriber in tuple(subs):
                subscriber.catch_up()

"""This process's sockets by user, and the bridge between them and the broker.

One broker subscription per user channel, reference-counted across the sockets and running
turns of that user in this process. Publishing never waits: the hub delivers to this worker's
own sockets at once, then hands the batch to the `Publisher` for every other worker. Delivery
to a socket never blocks either: each subscriber owns a bounded queue and its overflow policy
(see `Connection` in `server/ws/connection.py`).

User channels are `{prefix}:{user:<id>}`, hash-tagged so that a Redis Cluster keeps each on one
shard (see `server.keys`). Besides the user channels, every worker subscribes from `start()` to ONE control channel,
`{prefix}:control`, for what every worker must hear whoever it serves (a session that ended:
each worker's session cache forgets it). Its traffic is a few small messages per logout, not
per event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

import orjson

from server import metrics
from server.db.outbox import Pending
from server.keys import user_tag
from server.realtime.broker.base import Broker
from server.realtime.envelope import Envelope, decode_batch
from server.realtime.publisher import Publisher

logger = logging.getLogger(__name__)

ControlHandler = Callable[[int, dict[str, Any]], None]
BroadcastHandler = Callable[[dict[str, Any]], None]


class Subscriber(Protocol):
    def deliver(self, envelope: Envelope) -> None:
        """Take one event for the socket without blocking."""

    def catch_up(self) -> None:
        """Events may have been missed (the broker reconnected): fetch from the database what is."""

    def control(self, message: dict[str, Any]) -> None:
        """A control message for this user's sockets (a session ended); must not block."""


class Hub:
    def __init__(self, broker: Broker, *, prefix: str, origin: str | None = None) -> None:
        self._broker = broker
        self._namespace = f"{prefix}:"
        self._prefix = f"{prefix}:{{user:"
        """How every user channel, `{prefix}:{user:<id>}` (hash-tagged: `server.keys`), begins."""
        self.origin = origin or secrets.token_hex(6)
        """This worker's name on the broker: its own batches come back and are skipped."""
        self._publisher = Publisher(broker, origin=self.origin)
        self._own = (f"{self.origin}\n".encode(), f"{self.origin} ".encode())
        """How this worker's own batches begin (the origin, then a newline or the publication time)."""
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._interest: dict[int, int] = {}
        self._ready: dict[int, asyncio.Event] = {}
        self._control: list[ControlHandler] = []
        self.control_channel = f"{prefix}:control"
        self._broadcast: list[BroadcastHandler] = []
        self._reconnect: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self._broker.start(self)
        self._publisher.start()
        await self._broker.subscribe(self.control_channel)

    async def stop(self) -> None:
        await self._publisher.stop()
        await self._broker.stop()

    def channel(self, user_id: int) -> str:
        return self._namespace + user_tag(user_id)

    def on_control(self, handler: ControlHandler) -> None:
        """Register a handler for worker-to-worker control messages (e.g. `cancel`)."""
        self._control.append(handler)

    def on_broadcast(self, handler: BroadcastHandler) -> None:
        """Register a handler for messages on the control channel, from every worker (this one included)."""
        self._broadcast.append(handler)

    def on_reconnect(self, handler: Callable[[], None]) -> None:
        """Register a callback for when control messages may have been lost (a broker outage)."""
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

    def publish(self, user_id: int, envelopes: Sequence[Envelope]) -> None:
        """Deliver to this worker's subscribers now, and queue for every other worker; never waits."""
        if not envelopes:
            return
        self._deliver(user_id, envelopes)
        self._publisher.put(self.channel(user_id), envelopes)

    async def publish_pending(self, pending: Pending) -> None:
        """Publish committed events (an outbox's), user by user, each user's in order."""
        for user_id, events in pending.items():
            self.publish(user_id, [Envelope(text=event.text, seq=event.seq) for event in events])

    def send_control(self, user_id: int, message: dict[str, Any]) -> None:
        self.publish(user_id, [Envelope.command(message)])

    def broadcast(self, message: dict[str, Any]) -> None:
        """Tell every worker (this one at once); never waits.

        If the broker is away the others miss it; once a publish gets through again they are
        told to catch up (`on_reconnect` handlers), so callers bound what that costs.
        """
        self._on_broadcast(message)
        self._publisher.put(self.control_channel, [Envelope.command(message)])

    def notify_subscribers(self, user_id: int, message: dict[str, Any]) -> None:
        """Hand a control message to this worker's subscribers (sockets) of `user_id`."""
        for subscriber in tuple(self._subscribers.get(user_id, ())):
            subscriber.control(message)

    # BrokerListener

    def on_message(self, channel: str, data: bytes) -> None:
        if channel == self.control_channel:
            self._on_control_channel(data)
            return
        if not channel.startswith(self._prefix) or not channel.endswith("}") or data.startswith(self._own):
            return  # not ours, or our own batch coming back: delivered here when it was published
        try:
            user_id = int(channel[len(self._prefix) : -1])
            _, envelopes = decode_batch(data)
        except ValueError:
            logger.warning("Ignoring a malformed broker message on %s", channel)
            return
        self._deliver(user_id, envelopes)

    def on_reconnected(self) -> None:
        metrics.BROKER_RECONNECTS.inc()
        for callback in self._reconnect:  # first: the subscribers' catch-up may rely on it
            callback()
        for subs in self._subscribers.values():
            for subscriber in tuple(subs):
                subscriber.catch_up()

    def _deliver(self, user_id: int, envelopes: Sequence[Envelope]) -> None:
        subscribers = self._subscribers.get(user_id)
        for envelope in envelopes:
            if envelope.control:
                self._on_control(user_id, envelope)
            elif subscribers:
                for subscriber in tuple(subscribers):
                    subscriber.deliver(envelope)

    def _on_control(self, user_id: int, envelope: Envelope) -> None:
        message = orjson.loads(envelope.text)
        if message.get("type") == "catch_up":
            for subscriber in tuple(self._subscribers.get(user_id, ())):
                subscriber.catch_up()
            return
        for handler in self._control:
            handler(user_id, message)

    def _on_control_channel(self, data: bytes) -> None:
        try:
            origin, envelopes = decode_batch(data)
        except ValueError:
            logger.warning("Ignoring a malformed message on %s", self.control_channel)
            return
        if origin == self.origin:
            return  # handled when broadcast
        for envelope in envelopes:
            try:
                message = orjson.loads(envelope.text)
            except orjson.JSONDecodeError:
                message = None
            if not envelope.control or not isinstance(message, dict):
                logger.warning("Ignoring a malformed message on %s", self.control_channel)
                continue
            if message.get("type") == "catch_up":  # broadcasts may have been lost in an outage
                for callback in self._reconnect:
                    callback()
                continue
            self._on_broadcast(message)

    def _on_broadcast(self, message: dict[str, Any]) -> None:
        for handler in self._broadcast:
            handler(message)

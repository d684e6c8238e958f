"""Redis pub/sub broker: one subscriber connection per process, pooled connections for publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server import metrics
from server.logs import Throttled
from server.realtime.broker.base import BrokerError, BrokerListener

logger = logging.getLogger(__name__)

#: How long one `get_message` waits; bounds how quickly the reader notices a stop.
POLL_SECONDS = 1.0
COMMAND_TIMEOUT = 5.0
PUBLISH_TIMEOUT = 1.0
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 5.0


class RedisBroker:
    """Publishes through a connection pool; receives through ONE pub/sub connection.

    The reader loop follows channels_redis' `_do_receiving`: subscribe/unsubscribe under a lock,
    `get_message(timeout=...)`, re-raise cancellation, and on any connection error back off,
    open a fresh pub/sub connection, re-subscribe every channel and tell the listener, which
    replays what its sockets may have missed from the database.
    """

    def __init__(self, url: str, *, name: str = "todochat") -> None:
        # No retries inside redis-py either: a publish that fails is dropped at once and its users
        # caught up from the log later (`Publisher`), rather than delivered late, after that.
        self._client = Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15, retry=Retry(NoBackoff(), 0)
        )
        # The subscriber must not retry silently inside redis-py: a reconnect it hid from us
        # would hide the gap too. Errors surface, and the reader loop recovers explicitly.
        self._sub_client = Redis.from_url(
            url,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=15,
            client_name=f"{name}-subscriber",  # visible in CLIENT LIST: one per worker
        )
        self._channels: set[str] = set()
        self._lock = asyncio.Lock()
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listener: BrokerListener | None = None
        self._has_channels = asyncio.Event()
        self._lost = False
        """The subscriber connection broke (or a subscribe failed): re-subscribe and tell the listener."""
        self._outage = Throttled(logger)
        """One outage, however many sockets subscribe and reconnects fail meanwhile: a few lines."""

    @property
    def client(self) -> Redis:
        """The pooled client, shared with the Redis-backed locks."""
        return self._client

    async def start(self, listener: BrokerListener) -> None:
        self._listener = listener
        self._pubsub = self._sub_client.pubsub(ignore_subscribe_messages=True)
        self._reader = asyncio.create_task(self._read_loop(), name="redis-broker-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8
            self._pubsub = None
        await self._sub_client.aclose()
        await self._client.aclose()
        self._listener = None

    async def publish_many(self, messages: Sequence[tuple[str, bytes]]) -> None:
        try:
            # Bounded: a paused Redis must cost the publisher a second, not the socket timeout.
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                if len(messages) == 1:
                    await self._client.publish(*messages[0])
                    return
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, data in messages:
                        pipe.publish(channel, data)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise BrokerError(f"publish to Redis failed: {exc!r}") from exc

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.add(channel)
            await self._apply("subscribe", channel)
        self._has_channels.set()

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.discard(channel)
            await self._apply("unsubscribe", channel)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise BrokerError(f"Redis did not answer: {exc}") from exc

    async def _apply(self, command: str, channel: str) -> None:
        # A failure here is not the caller's problem: the reader loop notices the broken
        # connection and re-subscribes the whole current set.
        if self._pubsub is None or self._lost:
            return  # known to be down: the reader's reconnect subscribes the current set
        try:
            # Bounded: a Redis that accepts connections but never answers must not hold the lock
            # (and with it every new socket and turn of this worker) forever.
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await getattr(self._pubsub, command)(channel)
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.BROKER_ERRORS.labels(operation="subscribe").inc()
            self._outage.failure("Redis %s failed, the reader will retry: %r", command, exc)
            self._lost = True

    async def _read_loop(self) -> None:
        backoff = BACKOFF_FIRST
        while True:
            try:
                if not self._channels:
                    self._has_channels.clear()
                    await self._has_channels.wait()
                assert self._pubsub is not None
                if not self._lost and not self._pubsub.subscribed:
                    async with self._lock:
                        pass  # a first subscribe may be in flight: let it finish
                    # Still nothing subscribed although channels are wanted: the subscribe failed.
                    self._lost = bool(self._channels) and not self._pubsub.subscribed
                if self._lost:
                    await self._reconnect()
                    if not self._channels:
                        continue
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_SECONDS)
                if message is not None:
                    self._deliver(message)
                backoff = BACKOFF_FIRST
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop boundary: log, back off, reconnect
                self._lost = True
                metrics.BROKER_ERRORS.labels(operation="receive").inc()
                self._outage.failure("Redis subscriber lost (%s); reconnecting in about %.2fs", exc, backoff)
                await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311  # nosec B311  # jitter, not crypto
                backoff = min(backoff * 2, BACKOFF_MAX)
                await self._drop_connection()

    def _deliver(self, message: dict[str, Any]) -> None:
        if message.get("type") != "message" or self._listener is None:
            return
        channel = message["channel"]
        self._listener.on_message(channel.decode() if isinstance(channel, bytes) else channel, message["data"])

    async def _drop_connection(self) -> None:
        async with self._lock:
            old, self._pubsub = self._pubsub, self._sub_client.pubsub(ignore_subscribe_messages=True)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # untyped before redis-py 8

    async def _reconnect(self) -> None:
        """Subscribe the whole current set on a fresh connection; raises while Redis is away."""
        async with self._lock:
            assert self._pubsub is not None
            if not self._channels:
                self._lost = False  # nothing to restore; the next subscribe opens a fresh connection
                return
            async with asyncio.timeout(COMMAND_TIMEOUT):
                await self._pubsub.subscribe(*self._channels)
            self._lost = False
        self._outage.recovered("Redis subscriber reconnected; %d channels subscribed", len(self._channels))
        if self._listener is not None:
            self._listener.on_reconnected()

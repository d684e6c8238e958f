"""The process's long-lived resources, built by the app's lifespan and reached through `app.state`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from server.auth.passwords import PasswordHasher
from server.auth.tokens import TokenCodec
from server.db.engine import Sessionmaker
from server.realtime.broker.base import Broker
from server.realtime.broker.memory import MemoryBroker
from server.realtime.broker.redis import RedisBroker
from server.realtime.hub import Hub
from server.realtime.outbox import Outbox, transaction
from server.settings import Settings


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    db: Sessionmaker
    broker: Broker
    hub: Hub
    passwords: PasswordHasher
    tokens: TokenCodec

    def transaction(self) -> AbstractAsyncContextManager[Outbox]:
        """A write transaction whose events are published after it commits."""
        return transaction(self.db, self.hub)


#: Broker implementations by URL scheme; the embedded default has no URL.
BROKERS: dict[str, Callable[[str], Broker]] = {
    "redis": RedisBroker,
    "rediss": RedisBroker,
    "unix": RedisBroker,
}


def create_broker(settings: Settings) -> Broker:
    if settings.redis_url is None:
        return MemoryBroker()
    scheme = settings.redis_url.split("://", 1)[0]
    try:
        factory = BROKERS[scheme]
    except KeyError:
        raise ValueError(f"REDIS_URL scheme {scheme!r} is not one of {sorted(BROKERS)}") from None
    return factory(settings.redis_url)

"""The process's long-lived resources, built by the app's lifespan and reached through `app.state`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from server.abuse import Limits, create_limits
from server.assistant.factory import create_agent
from server.assistant.tools import run_tool
from server.auth.passwords import PasswordHasher
from server.auth.sessions import SessionCache, Sessions
from server.auth.tokens import TokenCodec
from server.chat.locks import MemoryLocks, RedisLocks, TurnLocks
from server.chat.service import ChatService
from server.chat.turns import TurnRegistry
from server.db import migrate
from server.db.engine import Sessionmaker, create_engine, create_read_sessionmaker, create_sessionmaker
from server.db.outbox import Outbox, transaction
from server.db.retention import prune_forever
from server.realtime.broker.base import Broker
from server.realtime.broker.memory import MemoryBroker
from server.realtime.broker.redis import RedisBroker
from server.realtime.hub import Hub
from server.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    db: Sessionmaker
    """Sessions for transactions."""
    reads: Sessionmaker
    """Sessions for reads only (autocommit where that saves round trips)."""
    broker: Broker
    hub: Hub
    locks: TurnLocks
    turns: TurnRegistry
    chat: ChatService
    passwords: PasswordHasher
    tokens: TokenCodec
    limits: Limits
    """Every abuse limit (login, signup, chat turns, tool calls), shared across workers through Redis."""
    sessions: Sessions
    """The token check every surface runs, refresh, and ending sessions on every worker."""

    def transaction(self) -> AbstractAsyncContextManager[Outbox]:
        """A write transaction whose events are published after it commits."""
        return transaction(self.db, self.hub.publish_pending)


#: Broker implementations by URL scheme; the embedded default has no URL.
BROKERS: dict[str, Callable[[Settings], Broker]] = {
    "redis": lambda settings: RedisBroker(str(settings.redis_url), name=settings.redis_prefix),
}
BROKERS["rediss"] = BROKERS["unix"] = BROKERS["redis"]


def create_broker(settings: Settings) -> Broker:
    if settings.redis_url is None:
        return MemoryBroker()
    scheme = settings.redis_url.split("://", 1)[0]
    try:
        factory = BROKERS[scheme]
    except KeyError:
        raise ValueError(f"REDIS_URL scheme {scheme!r} is not one of {sorted(BROKERS)}") from None
    return factory(settings)


def create_locks(settings: Settings, broker: Broker) -> TurnLocks:
    if isinstance(broker, RedisBroker):
        return RedisLocks(broker.client, prefix=settings.redis_prefix)
    return MemoryLocks()


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Stop a background loop and wait until it has (its owner must not outlive it)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _flush_quietly(sessions: Sessions) -> None:
    """At shutdown, write the last minute's `last_used_at`; best effort, briefly."""
    try:
        async with asyncio.timeout(2):
            await sessions.flush_activity()
    except Exception as exc:  # the database may be the reason we are stopping
        logger.info("Could not write session activity at shutdown: %r", exc)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Open every resource in dependency order; close them in reverse, even on errors.

    Shutdown follows uvicorn's own: by the time this unwinds, uvicorn has stopped accepting
    and closed the sockets (1012). Running turns then get `shutdown_grace` to finish before
    they are cancelled (their partial replies persist); then the broker and database close.
    """
    async with AsyncExitStack() as stack:
        engine = create_engine(settings)
        stack.push_async_callback(engine.dispose)
        if settings.should_migrate:
            await migrate.upgrade(engine)
        else:
            await migrate.check_current(engine)
        db = create_sessionmaker(engine)
        reads = create_read_sessionmaker(engine)

        broker = create_broker(settings)
        hub = Hub(broker, prefix=settings.redis_prefix)
        await broker.start(hub)
        stack.push_async_callback(broker.stop)
        await hub.start()

        tokens = TokenCodec(
            secret=settings.resolve_jwt_secret(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_minutes=settings.access_token_minutes,
            refresh_days=settings.refresh_token_days,
        )
        sessions = Sessions(
            db=db,
            reads=reads,
            hub=hub,
            tokens=tokens,
            cache=SessionCache(ttl=settings.session_cache_seconds, size=settings.session_cache_size),
            leeway=settings.refresh_leeway_seconds,
        )
        upkeep = asyncio.create_task(sessions.maintain_forever(), name="session-upkeep")
        stack.push_async_callback(_flush_quietly, sessions)
        stack.push_async_callback(_cancel_and_wait, upkeep)

        locks = create_locks(settings, broker)
        limits = create_limits(settings)
        stack.push_async_callback(limits.aclose)
        passwords = PasswordHasher(
            rounds=settings.bcrypt_rounds, workers=settings.bcrypt_workers, queue=settings.bcrypt_queue
        )
        stack.callback(passwords.close)
        agent = create_agent(settings)
        stack.push_async_callback(agent.aclose)
        turns = TurnRegistry(
            db=db,
            reads=reads,
            hub=hub,
            locks=locks,
            agent=agent,
            run_tool=functools.partial(run_tool, limits=limits),
            lock_ttl=settings.turn_lock_seconds,
            turn_timeout=settings.turn_timeout,
            history_messages=settings.history_messages,
        )
        stack.push_async_callback(turns.shutdown, settings.shutdown_grace)

        pruner = asyncio.create_task(
            prune_forever(db, retention=timedelta(hours=settings.event_retention_hours)), name="event-pruner"
        )
        stack.push_async_callback(_cancel_and_wait, pruner)

        yield Runtime(
            settings=settings,
            engine=engine,
            db=db,
            reads=reads,
            broker=broker,
            hub=hub,
            locks=locks,
            turns=turns,
            chat=ChatService(
                db=db,
                reads=reads,
                hub=hub,
                locks=locks,
                turns=turns,
                lock_ttl=settings.turn_lock_seconds,
                limits=limits,
            ),
            passwords=passwords,
            tokens=tokens,
            limits=limits,
            sessions=sessions,
        )

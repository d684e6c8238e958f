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
from sqlalchemy.pool import QueuePool

from server import metrics, scrape
from server.abuse import Limits as AbuseLimits, create_limits
from server.assistant.factory import create_agent
from server.assistant.tools import run_tool
from server.auth.audit import AuditLog
from server.auth.passwords import PasswordHasher
from server.auth.sessions import SessionCache, Sessions
from server.auth.tokens import TokenCodec
from server.chat.admission import Admission
from server.chat.leases import Leases, new_worker_id
from server.chat.service import ChatService
from server.chat.turns import TurnRegistry
from server.chat.writer import TurnWriter
from server.clock import SYSTEM_CLOCK, Clock
from server.db import migrate
from server.db.engine import Sessionmaker, create_engine, create_read_sessionmaker, create_sessionmaker
from server.db.events import EventLog
from server.db.outbox import Outbox, transaction
from server.db.retention import prune_forever
from server.db.turnstore.base import TurnStore
from server.db.turnstore.postgres import PostgresTurnStore
from server.db.turnstore.sql import SqlTurnStore
from server.realtime.broker.base import Broker
from server.realtime.broker.cluster import ClusterBroker
from server.realtime.broker.memory import MemoryBroker
from server.realtime.broker.redis import RedisBroker
from server.realtime.hub import Hub
from server.reminders.actions import ReminderActions
from server.reminders.scheduler import ReminderScheduler
from server.settings import Settings
from server.ws.connection import Limits

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    db: Sessionmaker
    """Sessions for transactions."""
    reads: Sessionmaker
    """Sessions for reads only (autocommit where that saves round trips)."""
    events: EventLog
    broker: Broker
    hub: Hub
    store: TurnStore
    """The turn's hot path in storage (asyncpg on PostgreSQL)."""
    turns: TurnRegistry
    chat: ChatService
    leases: Leases
    passwords: PasswordHasher
    tokens: TokenCodec
    socket_limits: Limits
    limits: AbuseLimits
    """Every abuse limit (login, signup, chat turns, tool calls), shared across workers through Redis."""
    audit: AuditLog
    """Security events (logins, refusals, password changes, logouts) as structured log lines."""
    sessions: Sessions
    """The token check every surface runs, refresh, and ending sessions on every worker."""
    sampler: metrics.Sampler
    """Sets this worker's gauges (turns in flight, database pools); `/metrics` asks it for fresh values."""
    clock: Clock
    """Where "now" comes from for due times, reminders and repeating tasks (tests pass their own)."""
    reminders: ReminderScheduler
    reminder_actions: ReminderActions

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
    if settings.redis_cluster:
        return ClusterBroker(settings.redis_url, name=settings.redis_prefix)
    scheme = settings.redis_url.split("://", 1)[0]
    try:
        factory = BROKERS[scheme]
    except KeyError:
        raise ValueError(f"REDIS_URL scheme {scheme!r} is not one of {sorted(BROKERS)}") from None
    return factory(settings)


async def open_store(settings: Settings, engine: AsyncEngine) -> TurnStore:
    """asyncpg straight on PostgreSQL (the hot path); SQLAlchemy Core elsewhere (the embedded SQLite)."""
    if engine.dialect.name == "postgresql":
        return await PostgresTurnStore.open(
            settings.database_url,
            pool_size=settings.turn_pool_size,
            history_limit=settings.history_messages,
            prepared_statements=settings.db_prepared_statements,
            statement_timeout=settings.turn_statement_timeout,
        )
    return SqlTurnStore(engine, history_limit=settings.history_messages)


def socket_limits(settings: Settings) -> Limits:
    return Limits(
        send_queue=settings.ws_send_queue,
        rate_per_second=settings.ws_rate_per_second,
        rate_burst=settings.ws_rate_burst,
        idle_timeout=settings.ws_idle_timeout,
        max_frame_bytes=settings.ws_max_frame_bytes,
        resume_max_events=settings.resume_max_events,
    )


def create_sampler(settings: Settings, engine: AsyncEngine, store: TurnStore, admission: Admission) -> metrics.Sampler:
    """The gauges of this worker's state, read from where it is kept (nothing on the hot path moves them)."""
    sampler = metrics.Sampler()
    sampler.add(metrics.TURNS_IN_FLIGHT, lambda: admission.in_flight)
    sampler.add(metrics.TURN_CAPACITY, lambda: admission.limit)
    pool = engine.pool
    if isinstance(pool, QueuePool):
        sampler.add(metrics.DB_POOL_IN_USE.labels(pool="rest"), pool.checkedout)
        overflow = 0 if settings.is_sqlite else settings.db_max_overflow
        sampler.add(metrics.DB_POOL_SIZE.labels(pool="rest"), lambda: settings.db_pool_size + overflow)
    if isinstance(store, PostgresTurnStore):
        sampler.add(metrics.DB_POOL_IN_USE.labels(pool="turns"), lambda: store.pool_usage()[0])
        sampler.add(metrics.DB_POOL_SIZE.labels(pool="turns"), lambda: store.pool_usage()[1])
    return sampler


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
async def open_runtime(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Runtime]:
    """Open every resource in dependency order; close them in reverse, even on errors.

    Shutdown follows uvicorn's own: by the time this unwinds, uvicorn has stopped accepting
    and closed the sockets (1012). Running turns then get `shutdown_grace` to finish before
    they are cancelled (their partial replies persist); the lease is given up; then the broker
    (after publishing what is queued) and the database close.
    """
    async with AsyncExitStack() as stack:
        # Last of all: this worker's live gauges leave the shared metrics directory (multiprocess mode).
        stack.callback(scrape.forget_this_process)
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
        await hub.start()
        stack.push_async_callback(hub.stop)

        secret = settings.resolve_jwt_secret()
        audit = AuditLog(secret=secret)
        tokens = TokenCodec(
            secret=secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_minutes=settings.access_token_minutes,
            refresh_days=settings.refresh_token_days,
            session_max_days=settings.session_max_days,
        )
        sessions = Sessions(
            db=db,
            reads=reads,
            hub=hub,
            tokens=tokens,
            cache=SessionCache(ttl=settings.session_cache_seconds, size=settings.session_cache_size),
            leeway=settings.refresh_leeway_seconds,
            audit=audit,
        )
        upkeep = asyncio.create_task(sessions.maintain_forever(), name="session-upkeep")
        stack.push_async_callback(_flush_quietly, sessions)
        stack.push_async_callback(_cancel_and_wait, upkeep)

        store = await open_store(settings, engine)
        stack.push_async_callback(store.close)

        limits = create_limits(settings)
        stack.push_async_callback(limits.aclose)
        passwords = PasswordHasher(
            rounds=settings.bcrypt_rounds, workers=settings.bcrypt_workers, queue=settings.bcrypt_queue
        )
        stack.callback(passwords.close)
        agent = create_agent(settings)
        stack.push_async_callback(agent.aclose)
        admission = Admission(settings.max_turns_in_flight)
        worker_id = new_worker_id()
        writer = TurnWriter(store, worker_id=worker_id, max_concurrent_turns=settings.max_concurrent_turns)
        turns = TurnRegistry(
            writer=writer,
            store=store,
            db=db,
            hub=hub,
            agent=agent,
            run_tool=functools.partial(run_tool, limits=limits, clock=clock),
            turn_timeout=settings.turn_timeout,
            clock=clock,
            on_done=lambda _turn: admission.leave(),
        )
        leases = Leases(
            store=store,
            writer=writer,
            turns=turns,
            hub=hub,
            worker_id=worker_id,
            heartbeat=settings.worker_heartbeat,
            lease=settings.worker_lease,
            single_process=settings.redis_url is None,
        )
        await leases.start()
        stack.push_async_callback(leases.stop)
        stack.push_async_callback(turns.shutdown, settings.shutdown_grace)

        sampler = create_sampler(settings, engine, store, admission)
        sampling = asyncio.create_task(sampler.run(), name="metrics-sampler")
        stack.push_async_callback(_cancel_and_wait, sampling)
        scheduler = ReminderScheduler(
            db=db,
            reads=reads,
            publish=hub.publish_pending,
            clock=clock,
            poll=settings.reminder_poll_seconds,
            batch_users=settings.reminder_batch,
            batch_reminders=settings.reminder_batch,
        )
        scheduler.start()
        stack.push_async_callback(scheduler.stop)

        pruner = asyncio.create_task(
            prune_forever(db, retention=timedelta(hours=settings.event_retention_hours)), name="event-pruner"
        )
        stack.push_async_callback(_cancel_and_wait, pruner)

        yield Runtime(
            settings=settings,
            engine=engine,
            db=db,
            reads=reads,
            events=EventLog(reads),
            broker=broker,
            hub=hub,
            store=store,
            turns=turns,
            chat=ChatService(
                store=store,
                writer=writer,
                hub=hub,
                turns=turns,
                admission=admission,
                limits=limits,
            ),
            leases=leases,
            passwords=passwords,
            tokens=tokens,
            socket_limits=socket_limits(settings),
            limits=limits,
            audit=audit,
            sessions=sessions,
            sampler=sampler,
            clock=clock,
            reminders=scheduler,
            reminder_actions=ReminderActions(
                transaction=lambda: transaction(db, hub.publish_pending), limits=limits, clock=clock
            ),
        )

"""The async engine and session factory, with the SQLite settings that make the embedded default safe."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError, TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from server.errors import UnavailableError
from server.settings import Settings

Sessionmaker = async_sessionmaker[AsyncSession]

UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "40"})
"""SQLSTATE classes of a server that cannot serve right now: connection exceptions, insufficient
resources, operator intervention (shutdown, restart) and transaction rollback (retryable)."""


#: SQLSTATE classes that retrying later will not cure: data exception (a value out of range, NUL
#: in text), integrity constraint violation, syntax error or access rule violation, internal error.
NOT_OUTAGE_SQLSTATE_CLASSES = frozenset({"22", "23", "42", "XX"})


def is_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached right now (answered 503 / `unavailable`), as opposed to a bug.

    Drivers report lost or refused connections under several classes (asyncpg's "not accepting
    connections" arrives as a bare DBAPIError), so this goes by what the error is not: not a
    constraint, data or SQL error. Through SQLAlchemy's asyncpg adapter every server error is a
    bare DBAPIError too, so its SQLSTATE decides.
    """
    if isinstance(exc, (PoolTimeoutError, OSError)):
        return True
    if isinstance(exc, asyncpg.PostgresError):  # the turn's hot path speaks asyncpg directly
        state = exc.sqlstate or ""
        return state[:2] in UNAVAILABLE_CLASSES or (state == "55000" and "accepting connections" in str(exc))
    if isinstance(exc, asyncpg.InterfaceError):
        return "closed" in str(exc)  # "connection is closed"; other interface errors are bugs
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in NOT_OUTAGE_SQLSTATE_CLASSES:
        return False
    return not isinstance(exc, (IntegrityError, DataError, ProgrammingError))


def is_refused(exc: BaseException) -> bool:
    """The database answered and refused the statement for what it holds (NUL in text, a broken
    constraint), as opposed to being unreachable: nothing of it was written, and the same
    statement will fail again."""
    return isinstance(exc, (asyncpg.PostgresError, DBAPIError)) and not is_unavailable(exc)


def outage_of(exc: BaseException) -> UnavailableError | None:
    """The error to answer when `exc` means the database cannot serve right now; None for anything else.

    The one mapping of database outages: REST answers it with 503 and `Retry-After`, the socket
    with an `error unavailable` frame. Nothing was stored, so the client retries (a chat message
    with the same `client_msg_id`).
    """
    if not is_unavailable(exc):
        return None
    return UnavailableError("The database is temporarily unavailable, retry shortly", extra={"retry_after": 2})


def unnamed_statements() -> dict[str, Any]:
    """asyncpg connection arguments for a PgBouncer in transaction mode (`DB_PREPARED_STATEMENTS=false`).

    Between two transactions PgBouncer may hand the client's next statement to another server
    connection, so nothing may outlive a statement on the server. Every statement then uses the
    protocol's *unnamed* prepared statement: parsed, bound and run in one exchange, with no Sync in
    between, so it stays on one server connection, and replaced by the next one, so no name is left
    behind to clash with another client's or to pile up. See SQLAlchemy's asyncpg dialect docs,
    "Prepared Statement Cache" and "Prepared Statement Name with PGBouncer".
    """
    return {
        "statement_cache_size": 0,  # asyncpg's own cache (connection.fetch and friends)
        "prepared_statement_cache_size": 0,  # SQLAlchemy's cache of asyncpg PreparedStatements
        # SQLAlchemy prepares every statement with connection.prepare(name=...); "" is the unnamed
        # statement. (The dialect docs suggest uuid names, but those stay on the server connection.)
        "prepared_statement_name_func": lambda: "",
    }


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine for `settings.database_url`, its pool sized by settings."""
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url, pool_size=settings.db_pool_size, max_overflow=0, hide_parameters=True
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # Pre-ping: a round trip per checkout, so the first request after a PostgreSQL restart does
        # not fail. Affordable since the turn's hot path has its own pool (asyncpg, no pre-ping).
        pool_pre_ping=True,
        pool_recycle=1800,
        # Errors (and so logs) show the SQL but never the values bound to it: user content and secrets.
        hide_parameters=True,
        connect_args={} if settings.db_prepared_statements else unnamed_statements(),
    )


_SQLITE_READS = "todochat_sqlite_reads"
"""Execution option of the read sessions' engine on SQLite: their transactions begin deferred."""


def create_sessionmaker(engine: AsyncEngine) -> Sessionmaker:
    """Sessions for transactions (`async with db() as s, s.begin(): ...`)."""
    # expire_on_commit=False: objects stay readable after commit, when responses are built.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def create_read_sessionmaker(engine: AsyncEngine) -> Sessionmaker:
    """Sessions for reads. On PostgreSQL they run in autocommit: a SELECT costs one round trip,
    not BEGIN + SELECT + ROLLBACK. On SQLite they begin deferred: in WAL mode a reading transaction
    takes no lock, so reads neither wait for writers nor hold up the one writer."""
    if engine.dialect.name == "sqlite":
        return create_sessionmaker(engine.execution_options(**{_SQLITE_READS: True}))
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE.

    A deferred SQLite transaction that reads and then writes cannot wait for a lock held by
    another writer: it fails at once with "database is locked". Taking the write lock at BEGIN
    lets busy_timeout queue writers instead (SQLAlchemy's documented pysqlite recipe).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=10000", "synchronous=NORMAL"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        reads = connection.get_execution_options().get(_SQLITE_READS, False)
        connection.exec_driver_sql("BEGIN" if reads else "BEGIN IMMEDIATE")

"""The turn's hot path on PostgreSQL: asyncpg directly, one prepared statement per round, no ORM on the way.

Accepting a round of messages and finishing a round of replies is ONE data-modifying statement
(its own transaction; `commit_sql` builds it and says what it does). Nothing else of a turn
touches the database unless it calls tools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import attrgetter
from typing import Any

import asyncpg
import orjson

from server.db.outbox import PendingEvent
from server.db.turnstore import commit_sql
from server.db.turnstore.base import (
    Accepted,
    AcceptItem,
    AcceptStatus,
    Finished,
    FinishItem,
    HistoryRow,
    OrphanTurn,
    ToolItem,
    reply_of,
)

_RoundStatements = dict[tuple[bool, bool], commit_sql.Statement]
"""The round's statement by (has accepts, has finishes)."""

# The round's arrays, one per column, named as the statement's parameters (`commit_sql`).
_ACCEPT_COLUMNS: tuple[tuple[str, Callable[[AcceptItem], Any]], ...] = (
    ("a_user", attrgetter("user_id")),
    ("a_conversation", attrgetter("conversation_id")),
    ("a_title", attrgetter("title")),
    ("a_client_msg_id", attrgetter("client_msg_id")),
    ("a_turn", attrgetter("turn_id")),
    ("a_content", attrgetter("content")),
    ("a_created", attrgetter("created_at")),
    ("a_m4", lambda item: item.message_frame.parts[4]),
    ("a_s1", lambda item: item.start_frame.parts[1]),
)
_FINISH_COLUMNS: tuple[tuple[str, Callable[[FinishItem], Any]], ...] = (
    ("f_user", attrgetter("user_id")),
    ("f_turn", attrgetter("turn_id")),
    ("f_content", attrgetter("content")),
    ("f_status", attrgetter("status")),
    ("f_created", attrgetter("created_at")),
    ("f_m4", lambda item: item.message_frame.parts[4]),
    ("f_e1", lambda item: item.end_frame.parts[1]),
    ("f_e2", lambda item: item.end_frame.parts[2]),
)

# A tool call or result of a running turn: as the round's statement (`commit_sql`), lock the user's row,
# take the next seq, write, and compare the locked `last_seq` with the one the statement saw (`fresh`):
# if another writer of the user committed while this one waited for the lock (a conversation deleted,
# say), nothing is written: run it again.
_TOOL = """
WITH seen AS MATERIALIZED (SELECT last_seq FROM users WHERE id = $1),
locked AS MATERIALIZED (SELECT id, last_seq FROM users WHERE id = $1 FOR UPDATE),
go AS MATERIALIZED (
    SELECT l.id AS user_id, l.last_seq + 1 AS seq, t.conversation_id
    FROM locked l JOIN seen s ON s.last_seq = l.last_seq
    JOIN turns t ON t.turn_id = $2 AND t.user_id = l.id
),
msg AS (
    INSERT INTO messages (conversation_id, user_id, role, content, turn_id, tool_call, seq, created_at)
    SELECT conversation_id, user_id, 'tool', $6, $2, $7::text::json, seq, $4 FROM go WHERE $6::text IS NOT NULL
),
ev AS (
    INSERT INTO events (user_id, seq, type, frame, created_at) SELECT user_id, seq, $3, $5 || seq || $8, $4 FROM go
),
bumped AS (UPDATE users u SET last_seq = go.seq FROM go WHERE u.id = go.user_id)
SELECT (SELECT seq FROM go) AS seq,
       (SELECT last_seq FROM locked) IS NOT DISTINCT FROM (SELECT last_seq FROM seen) AS fresh
"""

_HISTORY = """
SELECT role, content, status, tool_call FROM (
    SELECT id, role, content, status, tool_call FROM messages
    WHERE conversation_id = $1 AND ($3::int IS NULL OR id < $3) ORDER BY id DESC LIMIT $2
) h ORDER BY id
"""

_TURN_REPLY = """
SELECT role, content, status, tool_call FROM messages
WHERE turn_id = $1 AND role IN ('assistant', 'tool') ORDER BY id
"""
_ACCEPTED_BEFORE = "SELECT EXISTS (SELECT 1 FROM messages WHERE user_id = $1 AND client_msg_id = $2)"
_TURN_EXISTS = "SELECT EXISTS (SELECT 1 FROM messages WHERE turn_id = $1 AND user_id = $2 AND role = 'user')"

_REGISTER = """
INSERT INTO workers (id, started_at, heartbeat_at) VALUES ($1, now(), now())
ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
"""
_HEARTBEAT = "UPDATE workers SET heartbeat_at = now() WHERE id = $1"
_CHECKPOINT = """
UPDATE turns t SET partial_reply = p.text
FROM unnest($2::text[], $3::text[]) AS p(turn_id, text)
WHERE t.turn_id = p.turn_id AND t.worker_id = $1
"""
_ORPHANS = """
SELECT t.turn_id, t.user_id, t.conversation_id, t.worker_id, coalesce(t.partial_reply, ''), w.heartbeat_at
FROM turns t LEFT JOIN workers w ON w.id = t.worker_id
WHERE t.worker_id <> $1 AND (w.id IS NULL OR $2::float8 < 0 OR w.heartbeat_at < now() - make_interval(secs => $2))
ORDER BY t.started_at LIMIT $3
"""
_FORGET = """
DELETE FROM workers w WHERE w.heartbeat_at < now() - make_interval(secs => $1)
  AND NOT EXISTS (SELECT 1 FROM turns t WHERE t.worker_id = w.id)
"""


async def _no_reset(_connection: asyncpg.Connection) -> None:
    return None


def asyncpg_dsn(database_url: str) -> str:
    """`postgresql+asyncpg://...` (SQLAlchemy's form) as the DSN asyncpg takes."""
    scheme, sep, rest = database_url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgresql") else database_url


class PostgresTurnStore:
    def __init__(self, pool: asyncpg.Pool, *, history_limit: int, statements: _RoundStatements) -> None:
        self._pool = pool
        self._history_limit = history_limit
        self._statements = statements

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        pool_size: int,
        history_limit: int,
        prepared_statements: bool = True,
        statement_timeout: float = 10.0,
    ) -> PostgresTurnStore:
        """A pool of its own for the hot path. `prepared_statements=False` for a PgBouncer in
        transaction mode, where a prepared statement may land on another server connection: every
        statement is then the unnamed one (see `server.db.engine.unnamed_statements`).

        `statement_timeout` (seconds): PostgreSQL cancels a statement that runs longer, before it
        commits (SQLSTATE 57014: the caller sees the database as unavailable and retries). Not on
        PgBouncer's connections, which refuse it as a startup parameter."""
        server_settings = {"application_name": "todochat-turns"}
        if prepared_statements:
            # Sent at connect, which PgBouncer refuses ("unsupported startup parameter"); without
            # prepared statements every statement is planned anyway.
            server_settings["plan_cache_mode"] = "force_generic_plan"
            # Each statement of this pool is written to probe indexes, and its plan, made once per
            # connection, outlives the table sizes it was made for: planned while a table fits a
            # page (a new deployment), a sequential scan stayed as the table grew (and, between
            # two vacuums, filled with the dead rows of the turns' updates). A statement with no
            # usable index still runs; this only makes a scan the last resort.
            server_settings["enable_seqscan"] = "off"
            server_settings["statement_timeout"] = str(max(1, round(statement_timeout * 1000)))
        pool = await asyncpg.create_pool(
            asyncpg_dsn(database_url),
            min_size=1,
            max_size=pool_size,
            statement_cache_size=1024 if prepared_statements else 0,
            # Our statements leave no session state (no LISTEN, advisory locks, cursors or SET), so
            # the pool need not send its reset query (four statements) after each one: a round trip.
            reset=_no_reset,
            server_settings=server_settings,
        )
        try:
            async with pool.acquire() as connection:
                messages_seq = await connection.fetchval("SELECT pg_get_serial_sequence('messages', 'id')")
                conversations_seq = await connection.fetchval("SELECT pg_get_serial_sequence('conversations', 'id')")
        except BaseException:
            await pool.close()
            raise
        statements = {
            (accepts, finishes): commit_sql.build(
                accepts=accepts, finishes=finishes, messages_seq=messages_seq, conversations_seq=conversations_seq
            )
            for accepts, finishes in ((True, False), (False, True), (True, True))
        }
        return cls(pool, history_limit=history_limit, statements=statements)

    async def close(self) -> None:
        await self._pool.close()

    def pool_usage(self) -> tuple[int, int]:
        """(connections in use, the most the pool opens), for the metrics."""
        return self._pool.get_size() - self._pool.get_idle_size(), self._pool.get_max_size()

    async def accept(self, items: Sequence[AcceptItem], *, worker_id: str, max_concurrent: int) -> list[Accepted]:
        accepted, _ = await self.commit(items, (), worker_id=worker_id, max_concurrent=max_concurrent)
        return accepted

    async def finish(self, items: Sequence[FinishItem]) -> list[Finished]:
        _, finished = await self.commit((), items, worker_id="", max_concurrent=0)
        return finished

    async def commit(
        self, accepts: Sequence[AcceptItem], finishes: Sequence[FinishItem], *, worker_id: str, max_concurrent: int
    ) -> tuple[list[Accepted], list[Finished]]:
        if not accepts and not finishes:
            return [], []
        values: dict[str, Any] = {}
        if accepts:
            start = accepts[0].start_frame.parts
            values |= {name: [column(item) for item in accepts] for name, column in _ACCEPT_COLUMNS}
            values |= {
                "s0": start[0],
                "s2": start[2],
                "max_concurrent": max_concurrent,
                "worker": worker_id,
                "history_limit": self._history_limit,
            }
        if finishes:
            values |= {name: [column(item) for item in finishes] for name, column in _FINISH_COLUMNS}
            values["e0"] = finishes[0].end_frame.parts[0]
        # The parts that are the same for every frame of a kind go once, as scalars.
        message = (accepts[0].message_frame if accepts else finishes[0].message_frame).parts
        values |= {"m0": message[0], "m1": message[1], "m2": message[2], "m3": message[3]}
        assert all(
            a.message_frame.parts[:4] == message[:4] and a.start_frame.parts[::2] == accepts[0].start_frame.parts[::2]
            for a in accepts
        )
        assert all(
            f.message_frame.parts[:4] == message[:4] and f.end_frame.parts[0] == finishes[0].end_frame.parts[0]
            for f in finishes
        )
        statement = self._statements[bool(accepts), bool(finishes)]
        rows = await self._pool.fetch(statement.sql, *(values[name] for name in statement.parameters))
        accepted: list[Accepted] = [Accepted(status=AcceptStatus.NOT_FOUND) for _ in accepts]
        finished: list[Finished] = [Finished(ended=False) for _ in finishes]
        for row in rows:
            if row["part"] == "f":
                if row["message_id"] is not None:
                    seq = row["seq"]
                    finished[row["ord"]] = Finished(
                        ended=True,
                        user_id=finishes[row["ord"]].user_id,
                        message_id=row["message_id"],
                        seq=seq,
                        events=[PendingEvent(row["message_frame"], seq), PendingEvent(row["second_frame"], seq + 1)],
                    )
                continue
            item = accepts[row["ord"]]
            status = AcceptStatus(row["status"])
            if status is AcceptStatus.ACCEPTED:
                seq = row["seq"]
                accepted[row["ord"]] = Accepted(
                    status=status,
                    conversation_id=row["conversation_id"],
                    message_id=row["message_id"],
                    seq=seq,
                    turn_id=item.turn_id,
                    events=[PendingEvent(row["message_frame"], seq), PendingEvent(row["second_frame"], seq + 1)],
                    history=_history(row["history"]) if row["history"] is not None else [],
                    timezone=row["timezone"],
                )
            elif status is AcceptStatus.DUPLICATE:
                accepted[row["ord"]] = Accepted(
                    status=status,
                    conversation_id=row["conversation_id"],
                    message_id=row["message_id"],
                    seq=row["seq"],
                    turn_id=row["original_turn_id"],
                )
            else:
                accepted[row["ord"]] = Accepted(status=status)
        return accepted, finished

    async def record_tool(self, item: ToolItem) -> PendingEvent | None:
        prefix, suffix = item.frame.parts
        record = orjson.dumps(item.tool_call).decode() if item.tool_call is not None else None
        while True:
            row = await self._pool.fetchrow(
                _TOOL, item.user_id, item.turn_id, item.kind, item.created_at, prefix, item.content, record, suffix
            )
            assert row is not None
            if row["fresh"]:
                break
        seq = row["seq"]
        return None if seq is None else PendingEvent(f"{prefix}{seq}{suffix}", seq)

    async def history(self, conversation_id: int, *, limit: int, before_id: int | None = None) -> list[HistoryRow]:
        rows = await self._pool.fetch(_HISTORY, conversation_id, limit, before_id)
        return [HistoryRow(row[0], row[1], row[2], _json(row[3])) for row in rows]

    async def turn_reply(self, turn_id: str) -> tuple[str, str, list[dict[str, Any]]] | None:
        rows = await self._pool.fetch(_TURN_REPLY, turn_id)
        return reply_of([(row[0], row[1], row[2], _json(row[3])) for row in rows])

    async def turn_exists(self, user_id: int, turn_id: str) -> bool:
        return bool(await self._pool.fetchval(_TURN_EXISTS, turn_id, user_id))

    async def accepted_before(self, user_id: int, client_msg_id: str) -> bool:
        return bool(await self._pool.fetchval(_ACCEPTED_BEFORE, user_id, client_msg_id))

    async def register_worker(self, worker_id: str) -> None:
        await self._pool.execute(_REGISTER, worker_id)

    async def heartbeat(self, worker_id: str) -> bool:
        status: str = await self._pool.execute(_HEARTBEAT, worker_id)
        return status != "UPDATE 0"

    async def checkpoint(self, worker_id: str, partials: Mapping[str, str]) -> None:
        if partials:
            await self._pool.execute(_CHECKPOINT, worker_id, list(partials), list(partials.values()))

    async def unregister_worker(self, worker_id: str) -> None:
        await self._pool.execute("DELETE FROM workers WHERE id = $1", worker_id)

    async def orphans(self, worker_id: str, *, lease_seconds: float, limit: int) -> list[OrphanTurn]:
        rows = await self._pool.fetch(_ORPHANS, worker_id, lease_seconds, limit)
        return [OrphanTurn(*row) for row in rows]

    async def forget_dead_workers(self, *, lease_seconds: float) -> None:
        await self._pool.execute(_FORGET, lease_seconds)


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _history(text: str) -> list[HistoryRow]:
    return [HistoryRow(role, content, status, tool_call) for role, content, status, tool_call in orjson.loads(text)]

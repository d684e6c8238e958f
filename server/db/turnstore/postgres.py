"""The turn's hot path on PostgreSQL: asyncpg directly, one prepared statement per batch, no ORM on the way.

Accepting a batch of messages is ONE data-modifying statement (it is its own transaction):
lock the users' rows, in id order; take each message's seqs; register its turn (the unique key
on `turns.conversation_id` answers "busy"); create or touch the conversation; insert the message
and its two events (their JSON spliced with the new numbers); bump the users' seqs; and return
what the ack and the reply need, the conversation's history included. Finishing a batch of turns
is one more such statement. Nothing else of a turn touches the database unless it calls tools.

One subtlety: a statement reads the database as of its start (READ COMMITTED), but it may wait
for a user's row lock while another transaction of that user commits. Every writer bumps the
user's `last_seq`, so comparing the locked row's `last_seq` with the one the statement saw tells
whether anything of the user changed meanwhile; such an item is left untouched and comes back
as `retry`, to run again on fresh data (rare: two writers of one user at the same instant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from server.db.outbox import PendingEvent
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

_COMMIT = """
WITH a_req AS MATERIALIZED (
    SELECT r.ord - 1 AS ord, r.user_id, r.conversation_id, r.title, r.client_msg_id, r.turn_id, r.content,
           r.created_at, $18::text AS m0, $19::text AS m1, $20::text AS m2, $21::text AS m3, r.m4,
           $22::text AS s0, r.s1, $23::text AS s2
    FROM unnest(
        $1::int[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[]
    ) WITH ORDINALITY AS r(user_id, conversation_id, title, client_msg_id, turn_id, content, created_at, m4, s1, ord)
),
f_req AS MATERIALIZED (
    SELECT r.ord - 1 AS ord, r.user_id, r.turn_id, r.content, r.status, r.created_at,
           $18::text AS m0, $19::text AS m1, $20::text AS m2, $21::text AS m3, r.m4, $24::text AS e0, r.e1, r.e2
    FROM unnest(
        $10::int[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::text[], $16::text[], $17::text[]
    ) WITH ORDINALITY AS r(user_id, turn_id, content, status, created_at, m4, e1, e2, ord)
),
-- Every user of the batch locked at once, in id order: one lock order for every writer.
-- Lookups are written so that this prepared statement's generic plan, which cannot know how many
-- rows the arrays hold, still probes indexes (`= ANY(array)`, LATERAL ... LIMIT 1) instead of
-- hash-joining over a sequential scan of messages (7,000 rows read per turn at 500 turns/s).
locked AS MATERIALIZED (
    SELECT u.id, u.last_seq, u.running_turns, u.timezone FROM users u
    WHERE u.id = ANY($1::int[] || $10::int[]) ORDER BY u.id FOR UPDATE
),
seen AS MATERIALIZED (
    SELECT u.id, u.last_seq FROM users u WHERE u.id = ANY($1::int[])
),
-- Accepting messages.
dupe AS MATERIALIZED (
    SELECT r.ord, m.id, m.seq, m.conversation_id, m.turn_id
    FROM a_req r CROSS JOIN LATERAL (
        SELECT id, seq, conversation_id, turn_id FROM messages
        WHERE user_id = r.user_id AND client_msg_id = r.client_msg_id LIMIT 1
    ) m
),
cand AS MATERIALIZED (
    SELECT r.*, l.id IS NOT NULL AS user_exists, l.last_seq AS base, l.timezone,
           l.last_seq IS NOT DISTINCT FROM s.last_seq AS fresh,
           coalesce(l.running_turns < $25, false) AS under_limit,
           d.ord IS NOT NULL AS duplicate
    FROM a_req r
    LEFT JOIN locked l ON l.id = r.user_id
    LEFT JOIN seen s ON s.id = r.user_id
    LEFT JOIN dupe d ON d.ord = r.ord
),
go AS MATERIALIZED (
    SELECT c.*, nextval('{messages_seq}'::regclass)::int AS message_id,
           CASE WHEN c.conversation_id IS NULL THEN nextval('{conversations_seq}'::regclass)::int END AS new_id
    FROM cand c
    WHERE c.user_exists AND c.fresh AND c.under_limit AND NOT c.duplicate
      AND (c.conversation_id IS NULL OR coalesce((
          SELECT true FROM conversations v WHERE v.id = c.conversation_id AND v.user_id = c.user_id LIMIT 1), false))
),
new_conv AS (
    INSERT INTO conversations (id, user_id, title, created_at, updated_at)
    SELECT new_id, user_id, title, created_at, created_at FROM go WHERE new_id IS NOT NULL
),
started AS (
    INSERT INTO turns (turn_id, user_id, conversation_id, client_msg_id, message_id, seq, worker_id, started_at)
    SELECT turn_id, user_id, coalesce(conversation_id, new_id), client_msg_id, message_id, base + 1, $26, created_at
    FROM go
    ON CONFLICT (conversation_id) DO NOTHING
    RETURNING turn_id, conversation_id
),
a_ok AS MATERIALIZED (
    SELECT g.*, s.conversation_id AS cid,
           g.m0 || (g.base + 1) || g.m1 || s.conversation_id || g.m2 || g.message_id
               || g.m3 || s.conversation_id || g.m4 AS message_frame,
           g.s0 || (g.base + 2) || g.s1 || s.conversation_id || g.s2 AS second_frame
    FROM go g JOIN started s USING (turn_id)
),
-- Finishing turns: a turn that is no longer registered (ended elsewhere) writes nothing.
ended AS (
    DELETE FROM turns t USING f_req r, locked l
    WHERE t.turn_id = ANY($11::text[]) AND t.turn_id = r.turn_id AND l.id = r.user_id AND t.user_id = r.user_id
    RETURNING t.turn_id, t.conversation_id
),
f_ok AS MATERIALIZED (
    SELECT f.*, e.conversation_id AS cid, l.last_seq AS base,
           nextval('{messages_seq}'::regclass)::int AS message_id
    FROM f_req f JOIN ended e USING (turn_id) JOIN locked l ON l.id = f.user_id
),
f_framed AS MATERIALIZED (
    SELECT o.*,
           o.m0 || (o.base + 1) || o.m1 || o.cid || o.m2 || o.message_id || o.m3 || o.cid || o.m4 AS message_frame,
           o.e0 || (o.base + 2) || o.e1 || o.message_id || o.e2 AS second_frame
    FROM f_ok o
),
-- Both: the messages, the conversations' activity, the events, the users' seqs.
msg AS (
    INSERT INTO messages (id, conversation_id, user_id, role, content, client_msg_id, status, turn_id, seq, created_at)
    SELECT message_id, cid, user_id, 'user', content, client_msg_id, NULL, turn_id, base + 1, created_at FROM a_ok
    UNION ALL
    SELECT message_id, cid, user_id, 'assistant', content, NULL, status, turn_id, base + 1, created_at FROM f_framed
),
touched AS (
    UPDATE conversations v SET updated_at = t.created_at
    FROM (SELECT cid, created_at FROM a_ok WHERE new_id IS NULL UNION ALL SELECT cid, created_at FROM f_framed) t
    WHERE v.id = t.cid
),
ev AS (
    INSERT INTO events (user_id, seq, type, frame, created_at)
    SELECT user_id, base + 1, 'message', message_frame, created_at FROM a_ok
    UNION ALL SELECT user_id, base + 2, 'turn.start', second_frame, created_at FROM a_ok
    UNION ALL SELECT user_id, base + 1, 'message', message_frame, created_at FROM f_framed
    UNION ALL SELECT user_id, base + 2, 'turn.end', second_frame, created_at FROM f_framed
),
bumped AS (
    UPDATE users u SET last_seq = u.last_seq + 2, running_turns = greatest(u.running_turns + d.delta, 0)
    FROM (SELECT user_id, 1 AS delta FROM a_ok UNION ALL SELECT user_id, -1 FROM f_framed) d
    WHERE u.id = ANY($1::int[] || $10::int[]) AND u.id = d.user_id
)
SELECT 'a' AS part, c.ord,
       CASE WHEN c.duplicate THEN 'duplicate'
            WHEN NOT c.user_exists THEN 'not_found'
            WHEN NOT c.fresh THEN 'retry'
            WHEN NOT c.under_limit THEN 'limited'
            WHEN o.ord IS NOT NULL THEN 'accepted'
            WHEN g.ord IS NOT NULL THEN 'busy'
            ELSE 'not_found' END AS status,
       coalesce(o.cid, d.conversation_id) AS conversation_id,
       coalesce(o.message_id, d.id) AS message_id,
       coalesce(o.base + 1, d.seq) AS seq,
       d.turn_id AS original_turn_id,
       o.message_frame, o.second_frame, o.timezone,
       CASE WHEN o.ord IS NOT NULL AND o.new_id IS NULL THEN (
           SELECT coalesce(json_agg(json_build_array(h.role, h.content, h.status, h.tool_call) ORDER BY h.id), '[]')
           FROM (SELECT id, role, content, status, tool_call FROM messages
                 WHERE conversation_id = o.cid ORDER BY id DESC LIMIT $27) h
       )::text END AS history
FROM cand c
LEFT JOIN go g ON g.ord = c.ord
LEFT JOIN a_ok o ON o.ord = c.ord
LEFT JOIN dupe d ON d.ord = c.ord
UNION ALL
SELECT 'f', r.ord, NULL, NULL, f.message_id, f.base + 1, NULL, f.message_frame, f.second_frame, NULL, NULL
FROM f_req r LEFT JOIN f_framed f ON f.ord = r.ord
"""

# A tool call or result of a running turn: as `_COMMIT`, lock the user's row, take the next seq, write, and
# compare the locked `last_seq` with the one the statement saw (`fresh`): if another writer of the user
# committed while this one waited for the lock (a conversation deleted, say), nothing is written: run it again.
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
    def __init__(self, pool: asyncpg.Pool, *, history_limit: int, commit_sql: str) -> None:
        self._pool = pool
        self._history_limit = history_limit
        self._commit = commit_sql

    @classmethod
    async def open(
        cls, database_url: str, *, pool_size: int, history_limit: int, prepared_statements: bool = True
    ) -> PostgresTurnStore:
        """A pool of its own for the hot path. `prepared_statements=False` for a PgBouncer in
        transaction mode, where a prepared statement may land on another server connection: every
        statement is then the unnamed one (see `server.db.engine.unnamed_statements`)."""
        server_settings = {"application_name": "todochat-turns"}
        if prepared_statements:
            # Sent at connect, which PgBouncer refuses ("unsupported startup parameter"); without
            # prepared statements every statement is planned anyway.
            server_settings["plan_cache_mode"] = "force_generic_plan"
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
        sql = _COMMIT.replace("{messages_seq}", messages_seq).replace("{conversations_seq}", conversations_seq)
        return cls(pool, history_limit=history_limit, commit_sql=sql)

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
        a_args: list[list[Any]] = [[] for _ in range(9)]
        for item in accepts:
            row = (
                item.user_id,
                item.conversation_id,
                item.title,
                item.client_msg_id,
                item.turn_id,
                item.content,
                item.created_at,
                item.message_frame.parts[4],
                item.start_frame.parts[1],
            )
            for column, value in zip(a_args, row, strict=True):
                column.append(value)
        f_args: list[list[Any]] = [[] for _ in range(8)]
        for finish in finishes:
            f_row = (
                finish.user_id,
                finish.turn_id,
                finish.content,
                finish.status,
                finish.created_at,
                finish.message_frame.parts[4],
                finish.end_frame.parts[1],
                finish.end_frame.parts[2],
            )
            for f_column, f_value in zip(f_args, f_row, strict=True):
                f_column.append(f_value)
        # The parts that are the same for every frame of a kind go once, as scalars.
        message = (
            (accepts[0].message_frame if accepts else finishes[0].message_frame).parts
            if accepts or finishes
            else ("",) * 5
        )
        start = accepts[0].start_frame.parts if accepts else ("", "", "")
        end = finishes[0].end_frame.parts if finishes else ("", "", "")
        assert all(a.message_frame.parts[:4] == message[:4] and a.start_frame.parts[::2] == start[::2] for a in accepts)
        assert all(f.message_frame.parts[:4] == message[:4] and f.end_frame.parts[0] == end[0] for f in finishes)
        rows = await self._pool.fetch(
            self._commit,
            *a_args,
            *f_args,
            *message[:4],
            start[0],
            start[2],
            end[0],
            max_concurrent,
            worker_id,
            self._history_limit,
        )
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

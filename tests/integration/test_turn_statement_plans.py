"""The turn's statements probe indexes in their generic plan, however large the tables grow.

A prepared statement runs a generic plan after its fifth execution (the turn pool forces it from
the first): the planner cannot see how many rows the arrays hold, and once planned a look-up as a
hash join over a sequential scan of `messages`, and an update of `conversations` as one over all
conversations, on every turn. Checked on tables of 2,000 users (20,000 messages), analyzed: on a
table of a page or two the planner rightly reads it whole, and the bench's small database with its
rows updated twice per turn is where that cost showed (`bench/README.md`).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from server.db import migrate
from server.db.turnstore import commit_sql
from server.db.turnstore.postgres import asyncpg_dsn
from tests.support import services

# The tables a turn writes that grow with users and history (turns holds running turns only).
GROWING = {"users", "conversations", "messages", "events"}
SHAPES = [(True, False), (False, True), (True, True)]


@pytest.fixture(scope="module")
async def connection() -> AsyncIterator[asyncpg.Connection]:
    database = await services.create_postgres_database("turn_plans")
    engine = create_async_engine(database.url)
    try:
        await migrate.upgrade(engine)
        await engine.dispose()
        connection = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            await connection.execute(
                """
                INSERT INTO users (email, password_hash, created_at, timezone)
                SELECT 'u' || i || '@example.com', 'x', now(), 'UTC' FROM generate_series(1, 2000) i;
                INSERT INTO conversations (user_id, title, created_at, updated_at)
                SELECT id, 't', now(), now() FROM users;
                INSERT INTO messages (conversation_id, user_id, role, content, seq, created_at)
                SELECT c.id, c.user_id, 'user', 'hello', g, now() FROM conversations c, generate_series(1, 10) g;
                ANALYZE;
                SET plan_cache_mode = force_generic_plan;
                """
            )
            yield connection
        finally:
            await connection.close()
    finally:
        await database.drop()


def scans(plan: dict[str, Any]) -> Iterator[tuple[str, str]]:
    if "Relation Name" in plan:
        yield plan["Node Type"], plan["Relation Name"]
    for child in plan.get("Plans", []):
        yield from scans(child)


@pytest.mark.parametrize("accepts,finishes", SHAPES, ids=["accepts", "finishes", "both"])
async def test_no_growing_table_is_read_sequentially(
    connection: asyncpg.Connection, accepts: bool, finishes: bool
) -> None:
    statement = commit_sql.build(
        accepts=accepts,
        finishes=finishes,
        messages_seq=await connection.fetchval("SELECT pg_get_serial_sequence('messages', 'id')"),
        conversations_seq=await connection.fetchval("SELECT pg_get_serial_sequence('conversations', 'id')"),
    )
    await connection.execute(f"PREPARE round AS {statement.sql}")
    try:
        nulls = ", ".join(["NULL"] * len(statement.parameters))
        [explained] = json.loads(await connection.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE round({nulls})"))
    finally:
        await connection.execute("DEALLOCATE round")
    found = list(scans(explained["Plan"]))
    assert found, "no table in the plan?"
    sequential = [table for node, table in found if node == "Seq Scan" and table in GROWING]
    assert sequential == [], f"sequential scans of {sequential} in {found}"


def test_every_shape_numbers_its_parameters_in_order() -> None:
    for accepts, finishes in SHAPES:
        statement = commit_sql.build(accepts=accepts, finishes=finishes, messages_seq="m", conversations_seq="c")
        assert len(set(statement.parameters)) == len(statement.parameters)
        numbers = {int(number) for number in re.findall(r"\$(\d+)", statement.sql)}
        assert numbers == set(range(1, len(statement.parameters) + 1))
        assert not re.search(r"\$[a-z]", statement.sql)
        assert ("a_req" in statement.sql, "f_req" in statement.sql) == (accepts, finishes)

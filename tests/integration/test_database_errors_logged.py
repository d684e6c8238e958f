"""Database errors in the log keep what failed and lose the values: real errors from PostgreSQL, through
asyncpg directly (the turn's hot path) and through SQLAlchemy (everything else), rendered as production does."""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError

from server.db.engine import create_engine
from server.logs import HIDDEN, make_formatter
from tests.support.settings import make_settings

SECRET = "hunter2-private-words"
SETUP = "CREATE TEMP TABLE probe (id int, body text UNIQUE CHECK (body NOT LIKE '%refused'))"
#: Each statement fails with a value in the driver's error text: (statement, arguments, what the log
#: keeps, the value it must not show).
FAILING: list[tuple[str, tuple[object, ...], str, str]] = [
    ("INSERT INTO probe VALUES ($1, $2)", (2, SECRET), "duplicate key value violates unique constraint", SECRET),
    ("INSERT INTO probe VALUES ($1, $2)", (SECRET, "x"), "invalid input for query argument $1", SECRET),
    ("SELECT ($1::text)::int", (SECRET,), "invalid input syntax for type integer", SECRET),
    ("INSERT INTO probe VALUES ($1, $2 || 'refused')", (3, SECRET), "violates check constraint", SECRET),
    ("SELECT ($1::text)::int", ("99999999999",), "is out of range for type integer", "99999999999"),
]


def rendered(exc: BaseException, fmt: str) -> str:
    """The line for `logger.exception(...)` with `exc`, and a `%r` of it in the message, as written in `fmt`."""
    logger = logging.getLogger("server.test")
    record = logger.makeRecord(
        "server.test", logging.ERROR, __file__, 1, "Statement failed: %r", (exc,), (type(exc), exc, exc.__traceback__)
    )
    line = make_formatter("json" if fmt == "json" else "console").format(record)
    if fmt == "json":
        entry = orjson.loads(line)
        return f"{entry['message']}\n{entry['exception']}"
    return line


@pytest.fixture
async def connection(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(False))
    await conn.execute(SETUP)
    await conn.execute("INSERT INTO probe VALUES (1, $1)", SECRET)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_asyncpg_errors_are_logged_without_their_values(connection: asyncpg.Connection, fmt: str) -> None:
    for statement, args, kept, value in FAILING:
        with pytest.raises((asyncpg.PostgresError, asyncpg.DataError)) as caught:
            await connection.execute(statement, *args)
        assert value in str(caught.value)  # the driver's own text has it
        line = rendered(caught.value, fmt)
        assert kept in line and HIDDEN in line, line
        assert value not in line, line


async def test_sqlalchemy_errors_with_hidden_parameters_lose_the_detail_too(postgres_url: str) -> None:
    engine = create_engine(make_settings(database_url=postgres_url))
    try:
        async with engine.connect() as conn:
            await conn.execute(text(SETUP))
            await conn.execute(text("INSERT INTO probe VALUES (1, :body)"), {"body": SECRET})
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("INSERT INTO probe VALUES (2, :body)"), {"body": SECRET})
    finally:
        await engine.dispose()
    assert "SQL parameters hidden" in str(caught.value)
    # ... yet the traceback shows the driver's error it wraps, with PostgreSQL's DETAIL:
    assert f"DETAIL:  Key (body)=({SECRET})" in "".join(traceback.format_exception(caught.value))
    line = rendered(caught.value, "json")
    assert "duplicate key value" in line and SECRET not in line, line

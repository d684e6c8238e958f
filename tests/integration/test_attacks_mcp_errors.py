"""A database error inside an MCP tool call: the agent gets a structured `internal` result, never SQL,
parameters or a traceback; the log gets one line with the request id and without the user's input."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.app import create_app
from tests.support import services
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import PASSWORD, make_settings
from tests.support.timing import TIMEOUT

MARKER = "private-title-7f3a"
"""The user's input: it must appear neither in the answer nor in the log."""


@pytest.fixture
async def broken_db() -> AsyncIterator[services.PostgresDatabase]:
    database = await services.create_postgres_database("mcp_errors")
    try:
        yield database
    finally:
        await database.drop()


@pytest.fixture
async def live(broken_db: services.PostgresDatabase) -> AsyncIterator[LiveServer]:
    async with serve_in_process(create_app(make_settings(database_url=broken_db.url))) as server:
        # Inserting a task now fails inside PostgreSQL, as a bug or a corrupted schema would.
        connection = await asyncpg.connect(services._asyncpg_dsn(broken_db.url))
        try:
            await connection.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'simulated failure' USING ERRCODE = 'XX000'; END $$"
            )
            await connection.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        finally:
            await connection.close()
        yield server


async def test_a_database_error_in_a_tool_is_a_clean_result_logged_once(
    live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        body = (await http.post("/api/auth/signup", json={"email": "m@example.com", "password": PASSWORD})).json()
    caplog.set_level(logging.INFO, logger="server")
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {body['token']}", "X-Request-ID": "mcp-req-1"}, timeout=TIMEOUT
        ) as client,
        Client(streamable_http_client(f"{live.base_url}/mcp", http_client=client)) as mcp,
    ):
        result = await mcp.call_tool("add_task", {"title": MARKER, "description": MARKER})
        listed = await mcp.call_tool("list_tasks", {})  # the endpoint still works

    assert result.is_error
    assert result.content[0].type == "text"
    value = orjson.loads(result.content[0].text)
    assert value == {"error": "internal", "message": "Internal server error", "request_id": "mcp-req-1"}
    for leak in (MARKER, "INSERT", "SQL", "Traceback", "simulated failure", "tasks"):
        assert leak not in result.content[0].text
    assert not listed.is_error and listed.structured_content == {"result": []}

    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    [failure] = failures
    assert "mcp-req-1" in failure.getMessage() and failure.exc_info is not None
    logged = logging.Formatter().format(failure)  # message and traceback, as a handler would write them
    assert MARKER not in logged and "simulated failure" in logged

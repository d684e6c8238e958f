"""The official MCP client on a test server's `/mcp`, and the value of a tool's result."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import orjson
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from tests.support.timing import TIMEOUT


@asynccontextmanager
async def open_mcp(base_url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT) as http,
        Client(streamable_http_client(f"{base_url}/mcp", http_client=http)) as client,
    ):
        yield client


def value(result: CallToolResult) -> Any:
    """What the tool returned (success or error result), as the chat model sees it."""
    assert len(result.content) == 1 and result.content[0].type == "text"
    return orjson.loads(result.content[0].text)

"""`/mcp`: the assistant's task tools for external agents, over MCP streamable HTTP, as the bearer JWT's user."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import mcp_types as types
import orjson
from fastapi import FastAPI
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from server.api.errors import request_id_var
from server.assistant.providers.base import ToolCallRequest
from server.assistant.tools import run_tool, tool_specs
from server.auth.bearer import bearer_token
from server.auth.tokens import TokenClaims
from server.db.engine import is_unavailable
from server.errors import AppError, ErrorCode, UnavailableError
from server.runtime import Runtime

logger = logging.getLogger(__name__)

PATH = "/mcp"

INSTRUCTIONS = (
    "Manage the to-do list of the user whose token authenticates this connection: "
    "add, list, complete, update and delete their tasks. Errors come back as results with an `error` code."
)


class MCPEndpoint:
    """The ASGI app at `/mcp`: checks the bearer JWT, then hands the request to the SDK's session manager.

    The manager runs stateless with JSON responses: every POST carries its own token and is
    served on its own, so any worker can answer any request and nothing needs a sticky session
    or an SSE stream through proxies. Auth is this small wrapper, not the SDK's
    `RequireAuthMiddleware`: that one answers OAuth-style (`{"error": "invalid_token"}`), not with
    the `{"detail", "code"}` body every other endpoint returns.
    """

    def __init__(self, *, version: str) -> None:
        specs = tool_specs()
        self._tools = [types.Tool(name=s.name, description=s.description, input_schema=s.parameters) for s in specs]
        self._schemas = {s.name: s.parameters for s in specs}
        self.server: Server[Any] = Server(
            "todo-chatbot",
            version=version,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # Lets the SDK check `Mcp-Param-*` headers without running tools/list per request.
            get_tool_input_schema=self._schemas.get,
        )
        self._runtime: Runtime | None = None
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def serve(self, runtime: Runtime) -> AsyncIterator[None]:
        """Serve with `runtime` until the block ends; calls still running are then cancelled.

        The SDK's manager can run only once, so each serve gets a new one.
        """
        # No DNS-rebinding Host check (security_settings): a rebound page can reach us but has no
        # bearer token to send, and behind a proxy the public Host names are not known here.
        manager = StreamableHTTPSessionManager(app=self.server, stateless=True, json_response=True)
        async with manager.run():
            self._runtime, self._manager = runtime, manager
            try:
                yield
            finally:
                self._runtime = self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Errors raised here, before any response starts, reach the app's `AppError` handler like
        # REST's: 401 `{"detail", "code": "unauthorized"}` with `WWW-Authenticate: Bearer`.
        if self._runtime is None or self._manager is None:
            raise UnavailableError("The MCP endpoint is not running")
        request = Request(scope)
        # The SDK builds its request from this same scope and hands it to the handlers as `ctx.request`.
        request.state.claims = await self._authenticate(request)
        await self._manager.handle_request(scope, receive, send)

    async def _authenticate(self, request: Request) -> TokenClaims:
        """The same check as REST's `CurrentUser`: a bearer access token of a live session."""
        assert self._runtime is not None
        return await self._runtime.sessions.authenticate(bearer_token(request.headers.get("authorization")))

    async def _list_tools(
        self, _ctx: ServerRequestContext[Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self._tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        """Run the tool for the token's user in one transaction, so open WebSockets get its `task.*` events.

        Every failure comes back as a result with an `error` code: the SDK would otherwise answer
        with the exception's text, and a database error's text is SQL.
        """
        assert self._runtime is not None
        user_id = _claims(ctx).user_id
        call = ToolCallRequest(id=str(ctx.request_id), name=params.name, arguments=params.arguments or {})
        try:
            async with self._runtime.transaction() as outbox:
                result = await run_tool(outbox, user_id, call, limits=self._runtime.limits, clock=self._runtime.clock)
        except AppError as exc:
            result = {"error": str(exc.code), "message": exc.detail}
        except Exception as exc:
            result = _unexpected(exc, tool=params.name)
        return _tool_result(result)


def mount(app: FastAPI) -> MCPEndpoint:
    """Route `/mcp` to a new endpoint; the app's lifespan must run `endpoint.serve(runtime)`."""
    endpoint = MCPEndpoint(version=app.version)
    # A Route, not a Mount: a Mount would redirect `/mcp` to `/mcp/`, and MCP clients POST to the URL as given.
    app.router.routes.append(Route(PATH, endpoint, include_in_schema=False))
    return endpoint


def _claims(ctx: ServerRequestContext[Any]) -> TokenClaims:
    """The caller, as authenticated by `MCPEndpoint.__call__`; never taken from the arguments."""
    request = ctx.request
    assert isinstance(request, Request), f"expected the HTTP request on the context, got {type(request).__name__}"
    claims = request.state.claims
    assert isinstance(claims, TokenClaims)
    return claims


def _unexpected(exc: Exception, *, tool: str) -> dict[str, Any]:
    """A result for an error nobody planned for, logged once: the tool's name and the traceback, never its arguments."""
    if is_unavailable(exc):
        logger.warning("MCP tool %.64r: database unavailable: %s", tool, type(exc).__name__)
        return {"error": str(ErrorCode.UNAVAILABLE), "message": "Storage is unavailable, retry shortly"}
    request_id = request_id_var.get()
    logger.error("MCP tool %.64r failed [request_id=%s]", tool, request_id, exc_info=exc)
    return {"error": str(ErrorCode.INTERNAL), "message": "Internal server error", "request_id": request_id}


def _tool_result(value: Any) -> types.CallToolResult:
    """The chat tool's result as MCP content: JSON text, and the same value as structured content.

    Structured content must be an object, so a list (list_tasks) is wrapped as `{"result": [...]}`,
    the SDK's own convention; the text is always the tool's result exactly as the chat agent sees it.
    """
    structured = value if isinstance(value, dict) else {"result": value}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=orjson.dumps(value).decode())],
        structured_content=structured,
        is_error=isinstance(value, dict) and "error" in value,
    )

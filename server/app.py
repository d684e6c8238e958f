"""The application factory: `create_app(settings)` wires routes, middleware and a lifespan that owns every resource."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.api import auth, chat, conversations, demo, health, mcp, metrics, tasks
from server.api.bodies import BodyLimitMiddleware
from server.api.errors import RequestIdMiddleware, install_error_handlers
from server.api.headers import SecurityHeadersMiddleware
from server.clock import SYSTEM_CLOCK, Clock
from server.db import migrate
from server.logs import configure_logging
from server.runtime import open_runtime
from server.settings import Settings
from server.ws import endpoint

API_DESCRIPTION = """\
REST surface of the Todo chatbot backend. Authenticate with `POST /api/auth/signup` or
`POST /api/auth/login` and send the returned token as `Authorization: Bearer <token>`.
Streaming chat runs over the WebSocket at `/api/ws` (see docs/protocol.md); agents reach the
same task tools over MCP at `/mcp` with the same token (see docs/mcp.md).
Every error is JSON: `{"detail": ..., "code": ...}`.
"""


#: Start-up failures that are the operator's to fix: uvicorn logs one line saying how, no traceback.
OPERATOR_ERRORS: tuple[type[Exception], ...] = (migrate.SchemaNotCurrentError,)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    try:
        async with open_runtime(app.state.settings, clock=app.state.clock) as runtime:
            app.state.runtime = runtime
            # MCP calls run in the SDK manager's task group: it starts after the runtime it uses
            # and stops (cancelling calls still running) before the runtime closes.
            async with app.state.mcp.serve(runtime):
                yield
    except OPERATOR_ERRORS as exc:
        app.state.startup_error = str(exc)
        raise


class App(FastAPI):
    """FastAPI, with the chat socket served straight from the ASGI entry point.

    The socket needs none of the HTTP middleware (CORS, request ids, error pages: it answers
    with its own frames and close codes), and the middleware and routing layers would stay on
    the stack of every open socket, about 6 KB each. With tens of thousands of sockets that is
    worth one `if`.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == endpoint.PATH:
            scope["app"] = self
            await endpoint.chat_socket(WebSocket(scope, receive, send))
            return
        if scope["type"] == "lifespan":
            send = self._one_line_startup_errors(send)
        await super().__call__(scope, receive, send)

    def _one_line_startup_errors(self, send: Send) -> Send:
        """Starlette reports a failed start-up with the traceback; for an operator error, its message."""

        async def send_message(message: Message) -> None:
            error = getattr(self.state, "startup_error", None)
            if message["type"] == "lifespan.startup.failed" and error:
                message = {**message, "message": error}
            await send(message)

        return send_message


def create_app(settings: Settings | None = None, *, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    """The app for `settings` (read from the environment when None); `clock` is where "now" comes from."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.resolved_log_format)
    docs = settings.serve_api_docs
    app = App(
        title="Todo chatbot backend",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.state.clock = clock
    install_error_handlers(app)
    # Innermost: a body over the limit fails the route reading it (413 `too_large`, our error model).
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware)
    # Around the rest, so every response gets them, the request-id middleware's 500s included.
    csp = demo.content_security_policy() if settings.demo_page else None
    app.add_middleware(SecurityHeadersMiddleware, page_csp=csp, hsts_max_age=settings.hsts_max_age)
    if settings.trusted_proxies:
        # Outermost, so every layer (the limits, the logs) sees the client a trusted proxy names;
        # anyone else's X-Forwarded-For is ignored. uvicorn's own copy is off (`python -m server`).
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    for router in (health.router, metrics.router, auth.router, tasks.router, conversations.router, chat.router):
        app.include_router(router)
    app.state.mcp = mcp.mount(app)
    if settings.demo_page:
        demo.mount(app)
    return app

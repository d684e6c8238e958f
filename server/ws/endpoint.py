"""`GET /api/ws`: origin check, authentication (header or first frame), then one `Connection`."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from urllib.parse import urlsplit

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import metrics, protocol
from server.auth.bearer import bearer_token
from server.auth.tokens import TokenClaims
from server.db.engine import is_unavailable
from server.errors import AppError, CloseCode
from server.logs import throttled
from server.runtime import Runtime
from server.settings import Settings
from server.ws.connection import Connection

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("server.access")

PATH = "/api/ws"
"""Served by `server.app.App` before routing (see there why)."""

#: Query parameters that would carry a token: refused, because URLs end up in access logs.
TOKEN_PARAMS = ("token", "access_token", "jwt", "auth", "authorization")


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    """Browsers always send Origin; other clients usually do not. Block cross-site hijacking."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in settings.cors_origins:
        return True
    host = websocket.headers.get("host", "")
    return bool(host) and urlsplit(origin).netloc == host  # same origin as the page that served us


def _after_seq(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("after_seq", "")
    # ASCII digits only: str.isdigit() accepts "²", which int() then rejects.
    return int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else None


async def chat_socket(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    settings = runtime.settings
    if not origin_allowed(websocket, settings):
        await websocket.close(code=CloseCode.POLICY_VIOLATION)  # before accept: the handshake gets 403
        return
    connection_id = secrets.token_hex(8)
    # This task serves the socket to the end: every line it (and the tasks it starts) logs names it.
    structlog.contextvars.bind_contextvars(connection_id=connection_id)
    await websocket.accept()
    if any(name in websocket.query_params for name in TOKEN_PARAMS):
        await websocket.close(CloseCode.UNAUTHENTICATED, "tokens in the query string are refused")
        return
    after_seq = _after_seq(websocket)
    try:
        claims, after_seq = await _authenticate(websocket, runtime, after_seq)
    except AppError as exc:
        await websocket.close(CloseCode.UNAUTHENTICATED, _close_reason(exc.detail))
        return
    except WebSocketDisconnect:
        return
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The session could not be checked: not the client's fault, so not 4401. It reconnects with backoff.
        metrics.DATABASE_ERRORS.labels(surface="socket").inc()
        throttled(logger, "database.socket-auth").failure("Socket authentication failed, database unavailable: %r", exc)
        await websocket.close(CloseCode.INTERNAL_ERROR, "storage unavailable, retry shortly")
        return
    structlog.contextvars.bind_contextvars(user_id=claims.user_id)
    if runtime.hub.sockets_of(claims.user_id) >= settings.ws_max_per_user:
        metrics.RATE_LIMITED.labels(limit="ws_sockets").inc()
        await websocket.close(CloseCode.TOO_MANY, "too many connections for this user")
        return
    connection = Connection(
        websocket,
        claims=claims,
        connection_id=connection_id,
        chat=runtime.chat,
        hub=runtime.hub,
        log=runtime.events,
        authenticate=runtime.sessions.authenticate,
        session_alive=runtime.sessions.is_alive,
        limits=runtime.socket_limits,
        reminders=runtime.reminder_actions,
    )
    begun = time.perf_counter()
    try:
        with metrics.SOCKETS_OPEN.track_inprogress():
            await connection.run(after_seq=after_seq)
    finally:
        # The socket's access line, like an HTTP request's: who closed it, with what, after how long.
        code = connection.close_code
        duration = (time.perf_counter() - begun) * 1000
        access_logger.info(
            "WS %s closed by the %s %.0fms",
            PATH,
            "client" if code is None else f"server ({code})",
            duration,
            extra={"close_code": code, "duration_ms": round(duration, 1)},
        )


def _close_reason(detail: str) -> str:
    """A close frame's reason holds at most 123 bytes of UTF-8 (RFC 6455 section 5.5)."""
    encoded = detail.encode()
    return detail if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "..."


async def _authenticate(
    websocket: WebSocket, runtime: Runtime, after_seq: int | None
) -> tuple[TokenClaims, int | None]:
    """A bearer header (CLI, servers), else an `auth` frame within the timeout (browsers)."""
    # The same check as REST's. Nothing awaits between it and `Connection.run` registering the
    # socket with the hub, so a session that ends after the check still reaches this socket.
    header = websocket.headers.get("authorization")
    if header is not None:
        return await runtime.sessions.authenticate(bearer_token(header)), after_seq
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout=runtime.settings.ws_auth_timeout)
    except TimeoutError:
        raise AppError("authentication timed out: send an auth frame first") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", CloseCode.NORMAL))
    text = message.get("text")
    if text is None:
        raise AppError("expected an auth frame first")
    frame = protocol.parse_client_frame(text, max_bytes=runtime.settings.ws_max_frame_bytes)
    if not isinstance(frame, protocol.Auth):
        raise AppError(f"expected an auth frame first, got {frame.type!r}")
    claims = await runtime.sessions.authenticate(frame.token)
    return claims, frame.after_seq if frame.after_seq is not None else after_seq

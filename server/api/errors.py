"""The HTTP error model: every error is JSON `{"detail", "code"}`; a 500 carries a request id, the log the traceback."""

from __future__ import annotations

import logging
import secrets
import time
from contextvars import ContextVar
from typing import Any

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import metrics
from server.db.engine import outage_of
from server.errors import AppError, ErrorCode
from server.logs import throttled

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("server.access")
"""One line per HTTP request: method, path without the query string (it may carry secrets), status, duration."""

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_STATUS_CODES = {
    400: ErrorCode.INVALID,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def error_body(detail: Any, code: str) -> dict[str, Any]:
    return {"detail": detail, "code": code}


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    if "retry_after" in exc.extra:  # RFC 9110 section 10.2.3, in whole seconds
        headers["Retry-After"] = str(exc.extra["retry_after"])
    return JSONResponse(error_body(exc.detail, exc.code), status_code=exc.status_code, headers=headers or None)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, (UnicodeDecodeError, RecursionError)):
        # FastAPI's 400 for a body it could not decode (not UTF-8, nested too deeply): the same 422 as
        # malformed JSON, in the documented validation-error shape.
        errors = [{"loc": ["body"], "msg": "The body is not UTF-8 JSON of a reasonable depth", "type": "json_invalid"}]
        return JSONResponse(error_body(errors, ErrorCode.INVALID), status_code=422)
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.INTERNAL)
    return JSONResponse(error_body(exc.detail, code), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Only where and what: pydantic's `input` would echo passwords back (and into logs).
    errors = [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in exc.errors()]
    return JSONResponse(jsonable_encoder(error_body(errors, ErrorCode.INVALID)), status_code=422)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    outage = outage_of(exc)
    if outage is None:
        raise exc  # a bug, not an outage: the request-id middleware turns it into a logged 500
    metrics.DATABASE_ERRORS.labels(surface="rest").inc()
    throttled(logger, "database.rest").failure("Database unavailable: %s", exc.__class__.__name__)
    return await _app_error(request, outage)


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.info("Integrity error mapped to 409: %s", exc.__class__.__name__)
    return JSONResponse(error_body("Conflicts with existing data", ErrorCode.CONFLICT), status_code=409)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    # The ORM's errors, and asyncpg's from the turn's store (its reads serve REST too).
    for database_error in (DBAPIError, SQLAlchemyTimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(database_error, _database_error)


class RequestIdMiddleware:
    """Tags each HTTP request with an id (`X-Request-ID`), turns unexpected errors into a 500, logs the request.

    Pure ASGI rather than BaseHTTPMiddleware: no extra task per request, and streaming bodies
    pass straight through.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or secrets.token_hex(8)
        token = request_id_var.set(request_id)
        # On every line of this request (and `user_id` once its token is checked: `server/api/deps.py`).
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = False
        status = 500
        begun = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("Unhandled error in %s %s [request_id=%s]", scope["method"], scope["path"], request_id)
            if started:
                raise
            body = orjson.dumps({**error_body("Internal server error", ErrorCode.INTERNAL), "request_id": request_id})
            await send_with_id(
                {"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            duration = (time.perf_counter() - begun) * 1000
            metrics.count_response(status)
            path = _log_path(scope)
            access_logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                path,
                status,
                duration,
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(duration, 1),
                },
            )
            request_id_var.reset(token)
            structlog.contextvars.unbind_contextvars("user_id")
            structlog.contextvars.reset_contextvars(**bound)


def _log_path(scope: Scope) -> str:
    """The path as the client sent it (percent-encoded, so no control characters), never the query string."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1").partition("?")[0] if isinstance(raw, bytes) else repr(scope["path"])[1:-1]
    return path[:200]


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            # Echo only short, plain ids: anything else could smuggle text into our logs.
            if 0 < len(candidate) <= 64 and candidate.replace("-", "").isalnum():
                return candidate
    return None

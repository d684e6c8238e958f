"""The errors the service raises, and how each maps to HTTP and to WebSocket.

Exception tree (domain and database code raise these, never ``HTTPException``)::

    AppError                    500 internal
    ├── AuthError               401 unauthorized       (adds ``WWW-Authenticate: Bearer``)
    ├── ForbiddenError          403 forbidden
    ├── NotFoundError           404 not_found
    ├── ConflictError           409 conflict
    │   └── BusyError           409 busy               (a turn is already running)
    ├── InvalidInputError       422 invalid
    │   ├── BadJsonError        400 bad_json           (a WebSocket frame that is not a JSON object)
    │   └── UnknownTypeError    400 unknown_type       (a WebSocket frame of no known `type`)
    ├── PayloadTooLargeError    413 too_large
    ├── RateLimitedError        429 rate_limited       (``extra["retry_after"]``: seconds, sent as ``Retry-After``)
    ├── UpstreamError           502 upstream           (the model server failed)
    └── UnavailableError        503 unavailable
        └── OverloadedError     503 overloaded         (this worker sheds load; `retry_after`)

Over HTTP every error renders as ``{"detail", "code"}``; over WebSocket as an ``error`` frame
``{"type": "error", "code", "detail", "ref"}`` and the socket stays open. Only the conditions in
:class:`CloseCode` close a socket.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Machine-readable codes shared by HTTP bodies and WebSocket `error` frames."""

    INTERNAL = "internal"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    BUSY = "busy"
    INVALID = "invalid"
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    UPSTREAM = "upstream"
    OVERLOADED = "overloaded"


class CloseCode(IntEnum):
    """WebSocket close codes (RFC 6455 section 7.4; 4000-4999 are ours)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    """Closed as a slow consumer, after a `resync_required` frame."""
    UNAUTHENTICATED = 4401
    """No token, a bad token, or an expired one that was not refreshed in time."""
    AUTH_TIMEOUT = 4408
    TOO_MANY = 4429


class AppError(Exception):
    """Base of every error the service means to report to a client."""

    status_code: ClassVar[int] = 500
    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    default_detail: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str | None = None, *, extra: dict[str, Any] | None = None) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra or {}
        super().__init__(self.detail)


class AuthError(AppError):
    status_code = 401
    code = ErrorCode.UNAUTHORIZED
    default_detail = "Not authenticated"


class ForbiddenError(AppError):
    status_code = 403
    code = ErrorCode.FORBIDDEN
    default_detail = "Not allowed"


class NotFoundError(AppError):
    status_code = 404
    code = ErrorCode.NOT_FOUND
    default_detail = "Not found"


class ConflictError(AppError):
    status_code = 409
    code = ErrorCode.CONFLICT
    default_detail = "Conflict"


class BusyError(ConflictError):
    code = ErrorCode.BUSY
    default_detail = "A reply is already being generated in this conversation"


class InvalidInputError(AppError):
    status_code = 422
    code = ErrorCode.INVALID
    default_detail = "Invalid input"


class BadJsonError(InvalidInputError):
    status_code = 400
    code = ErrorCode.BAD_JSON
    default_detail = "Frame is not valid JSON"


class UnknownTypeError(InvalidInputError):
    status_code = 400
    code = ErrorCode.UNKNOWN_TYPE
    default_detail = "Unknown frame type"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = ErrorCode.TOO_LARGE
    default_detail = "Payload too large"


class RateLimitedError(AppError):
    status_code = 429
    code = ErrorCode.RATE_LIMITED
    default_detail = "Too many requests, slow down"


class UpstreamError(AppError):
    status_code = 502
    code = ErrorCode.UPSTREAM
    default_detail = "The assistant's model server failed"


class UnavailableError(AppError):
    status_code = 503
    code = ErrorCode.UNAVAILABLE
    default_detail = "Service temporarily unavailable"


class OverloadedError(UnavailableError):
    code = ErrorCode.OVERLOADED
    default_detail = "The server is busy, retry shortly"

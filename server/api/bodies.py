"""A limit on HTTP request bodies: 413 `too_large` in the service's error model, before the body is read.

Starlette's own `RequestBodyLimitMiddleware` answers in plain text, even where a route has
already rendered the error; this one keeps `{"detail", "code"}`. A declared `Content-Length`
over the limit is answered at once; a chunked body is counted as it arrives, and the route
reading it fails with the same 413 (raised as Starlette's HTTPException, which FastAPI's body
parsing passes through to the app's handler).
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import ErrorCode


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = f"Request body is larger than {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            body = orjson.dumps({"detail": self.detail, "code": ErrorCode.TOO_LARGE})
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 413, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self.detail)
            return message

        await self.app(scope, receive_limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # the server has already refused malformed ones
    return None

"""Security headers on every HTTP response, by what the response is: API, demo page and widget, or API docs.

Pure ASGI (no task per request, streaming untouched). A header a route set itself wins: the
middleware only fills in what is missing.

- Everywhere: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, and HSTS when
  `HSTS_MAX_AGE` is set (only behind TLS: a browser ignores it over plain HTTP anyway).
- API responses (`/api/*`, `/mcp`, probes, the OpenAPI document): `Cache-Control: no-store`,
  so tokens (signup, login, refresh) and personal data never sit in a browser or proxy cache,
  and `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` (a JSON body opened
  as a page runs nothing and cannot be framed).
- The demo page and the widget's files: a policy that allows exactly what the widget does:
  scripts and styles from this origin, the page's own inline `<script>` and `<style>` by hash,
  fetch and WebSocket to this origin, `data:` images (the favicon), no framing. The widget
  styles its Shadow DOM with a constructed stylesheet, which style-src does not govern.
- /docs and /redoc: Swagger UI and ReDoc load their code from a CDN with inline scripts, so only
  `frame-ancestors 'none'`; production switches them off (`API_DOCS`).
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")
WIDGET_PREFIX = "/widget/"
DEMO_PAGE = "/"

_INLINE = re.compile(r"<(script|style)\b([^>]*)>(.*?)</\1\s*>", re.IGNORECASE | re.DOTALL)


def inline_hashes(html: str) -> dict[str, list[str]]:
    """CSP source expressions for the page's inline scripts and styles, by tag: `'sha256-...'` each."""
    found: dict[str, list[str]] = {"script": [], "style": []}
    for tag, attributes, body in _INLINE.findall(html):
        if tag.lower() == "script" and re.search(r"\bsrc\s*=", attributes, re.IGNORECASE):
            continue
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        found[tag.lower()].append(f"'sha256-{digest}'")
    return found


def page_csp(html: str) -> str:
    """The policy for the demo page `html` and the widget it loads (see the module docstring)."""
    hashes = inline_hashes(html)
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes["script"]]),
            " ".join(["style-src 'self'", *hashes["style"]]),
            "img-src 'self' data:",
            "connect-src 'self'",  # CSP Level 3: 'self' covers ws:/wss: to this host too
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, page_csp: str | None, hsts_max_age: int = 0) -> None:
        self.app = app
        common = [("x-content-type-options", "nosniff"), ("referrer-policy", "no-referrer")]
        if hsts_max_age:
            common.append(("strict-transport-security", f"max-age={hsts_max_age}; includeSubDomains"))
        self._api = [*common, ("cache-control", "no-store"), ("content-security-policy", API_CSP)]
        self._docs = [*common, ("cache-control", "no-store"), ("content-security-policy", "frame-ancestors 'none'")]
        # Widget files keep the cache headers StaticFiles gives them (ETag, Last-Modified).
        self._page = [*common, ("content-security-policy", page_csp)] if page_csp else None

    def headers_for(self, path: str) -> list[tuple[str, str]]:
        if self._page is not None and (path == DEMO_PAGE or path.startswith(WIDGET_PREFIX)):
            return self._page
        if path in DOCS_PATHS or path.startswith(tuple(f"{docs}/" for docs in DOCS_PATHS)):
            return self._docs
        return self._api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)

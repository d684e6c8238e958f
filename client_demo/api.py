"""The REST half of the protocol: signup, login, refresh, logout, tasks and message history, over httpx."""

from __future__ import annotations

import platform
from types import TracebackType
from typing import Any, Protocol

import httpx

from client_demo.errors import (
    AuthFailedError,
    ClientError,
    RequestFailedError,
    ServerUnreachableError,
    SessionExpiredError,
)

REQUEST_TIMEOUT = 15.0
DEVICE = f"chat-demo on {platform.node() or 'this computer'}"[:100]
"""How this client's sessions are listed by `GET /api/auth/sessions`."""


def ws_url(server: str) -> str:
    """`http://host:port` -> `ws://host:port/api/ws` (and https -> wss)."""
    scheme, _, rest = server.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/api/ws"


def describe_error(response: httpx.Response) -> tuple[str, str | None]:
    """The server's `{"detail", "code"}` as one line; a validation error names its fields."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code} {response.reason_phrase}", None
    if not isinstance(body, dict):
        return f"HTTP {response.status_code} {response.reason_phrase}", None
    detail = body.get("detail")
    code = body.get("code") if isinstance(body.get("code"), str) else None
    if isinstance(detail, list):
        # 422: [{"loc": ["body", "password"], "msg": "..."}] -> "password: ..."
        parts = []
        for error in detail:
            if isinstance(error, dict):
                where = ".".join(str(part) for part in error.get("loc", [])[1:]) or "request"
                parts.append(f"{where}: {error.get('msg', 'invalid')}")
        return "; ".join(parts) or "invalid request", code
    return (str(detail) if detail else f"HTTP {response.status_code} {response.reason_phrase}"), code


class TokenSource(Protocol):
    """Where a logged-in client gets its access token, kept fresh with the refresh token."""

    async def fresh_token(self) -> str:
        """The access token, refreshed first if it is about to expire."""
        ...

    async def refresh(self, *, stale: str) -> bool:
        """Replace `stale` (refused by the server); False when the session is gone."""
        ...


class ApiClient:
    """One server's REST API; once logged in, `tokens` (or a fixed `token`) gives the bearer token.

    With `tokens`, a 401 is answered by refreshing the access token and retrying once: only a
    refused refresh (the session is gone) reaches the caller as `SessionExpiredError`.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        tokens: TokenSource | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server
        self.token = token
        self.tokens = tokens
        self._http = httpx.AsyncClient(base_url=server, timeout=REQUEST_TIMEOUT, transport=transport)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        token = await self.tokens.fresh_token() if self.tokens is not None else self.token
        response = await self._send(method, path, token, **kwargs)
        if response.status_code == 401 and token and self.tokens is not None:
            if not await self.tokens.refresh(stale=token):
                raise SessionExpiredError(describe_error(response)[0])
            token = await self.tokens.fresh_token()
            response = await self._send(method, path, token, **kwargs)
        if response.is_success:
            return response.json() if response.content else None
        message, code = describe_error(response)
        if response.status_code == 401 and token:
            raise SessionExpiredError()
        if response.status_code in (401, 409):
            raise AuthFailedError(message)
        raise RequestFailedError(message, status_code=response.status_code, code=code)

    async def _send(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            return await self._http.request(method, path, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachableError(self.server) from exc
        except httpx.TransportError as exc:
            raise ClientError(f"request to {self.server} failed: {exc.__class__.__name__}") from exc

    # --- auth ---------------------------------------------------------------------------------

    async def signup(self, email: str, password: str) -> dict[str, Any]:
        """`{id, email, token}` of a new account; `AuthFailedError` if the email is taken."""
        result: dict[str, Any] = await self._request(
            "POST", "/api/auth/signup", json={"email": email, "password": password, "device": DEVICE}
        )
        return result

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """`{id, email, token, refresh_token, ...}`; `AuthFailedError("Incorrect email or password")` otherwise."""
        result: dict[str, Any] = await self._request(
            "POST", "/api/auth/login", json={"email": email, "password": password, "device": DEVICE}
        )
        return result

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """New tokens for the session; `AuthFailedError` when the server refuses (the session is gone)."""
        result: dict[str, Any] = await self._request("POST", "/api/auth/refresh", json={"refresh_token": refresh_token})
        return result

    async def logout(self) -> None:
        """End this session on the server (its tokens stop working everywhere)."""
        await self._request("POST", "/api/auth/logout")

    # --- the user's resources -------------------------------------------------------------------

    async def tasks(self, user_id: int, *, status: str = "all", **filters: str) -> dict[str, Any]:
        """`{data: [task...], count}`, in creation order unless `sort` says otherwise; `filters` are the
        list's other query parameters (`due_before`, `sort`, ...)."""
        result: dict[str, Any] = await self._request(
            "GET", f"/api/{user_id}/tasks", params={"status": status, **filters}
        )
        return result

    async def me(self) -> dict[str, Any]:
        """The account: `{id, email, created_at, timezone}`."""
        result: dict[str, Any] = await self._request("GET", "/api/auth/me")
        return result

    async def messages(self, user_id: int, conversation_id: int, *, limit: int = 50) -> dict[str, Any]:
        """The newest `limit` messages of a conversation, oldest first: `{data, has_more}`."""
        result: dict[str, Any] = await self._request(
            "GET", f"/api/{user_id}/conversations/{conversation_id}/messages", params={"limit": limit}
        )
        return result

"""The REST half of the protocol: signup, login, tasks and message history, over httpx."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from client_demo.errors import (
    AuthFailedError,
    ClientError,
    RequestFailedError,
    ServerUnreachableError,
    SessionExpiredError,
)

REQUEST_TIMEOUT = 15.0


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


class ApiClient:
    """One server's REST API; `token` is sent as a bearer token once logged in."""

    def __init__(
        self, server: str, *, token: str | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.server = server
        self.token = token
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
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = await self._http.request(method, path, headers=headers, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ServerUnreachableError(self.server) from exc
        except httpx.TransportError as exc:
            raise ClientError(f"request to {self.server} failed: {exc.__class__.__name__}") from exc
        if response.is_success:
            return response.json() if response.content else None
        message, code = describe_error(response)
        if response.status_code == 401 and self.token:
            raise SessionExpiredError()
        if response.status_code in (401, 409):
            raise AuthFailedError(message)
        raise RequestFailedError(message, status_code=response.status_code, code=code)

    # --- auth ---------------------------------------------------------------------------------

    async def signup(self, email: str, password: str) -> dict[str, Any]:
        """`{id, email, token}` of a new account; `AuthFailedError` if the email is taken."""
        result: dict[str, Any] = await self._request(
            "POST", "/api/auth/signup", json={"email": email, "password": password}
        )
        return result

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """`{id, email, token}`; `AuthFailedError("Incorrect email or password")` otherwise."""
        result: dict[str, Any] = await self._request(
            "POST", "/api/auth/login", json={"email": email, "password": password}
        )
        return result

    # --- the user's resources -------------------------------------------------------------------

    async def tasks(self, user_id: int, *, status: str = "all") -> dict[str, Any]:
        """`{data: [task...], count}`, in creation order."""
        result: dict[str, Any] = await self._request("GET", f"/api/{user_id}/tasks", params={"status": status})
        return result

    async def messages(self, user_id: int, conversation_id: int, *, limit: int = 50) -> dict[str, Any]:
        """The newest `limit` messages of a conversation, oldest first: `{data, has_more}`."""
        result: dict[str, Any] = await self._request(
            "GET", f"/api/{user_id}/conversations/{conversation_id}/messages", params={"limit": limit}
        )
        return result

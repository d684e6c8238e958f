"""The `Authorization: Bearer <token>` header (RFC 6750 section 2.1), read the same way by REST, WebSocket and MCP."""

from __future__ import annotations

from server.errors import AuthError


def bearer_token(header: str | None) -> str:
    """The token from an Authorization header; `AuthError` when it is missing or not a bearer token."""
    if header is None:
        raise AuthError("Not authenticated")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("Expected 'Authorization: Bearer <token>'")
    return token

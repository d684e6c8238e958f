"""Tokens minted by tests: for a real session with a chosen lifetime, or forged with chosen claims."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import jwt

from server.auth.tokens import TokenCodec
from server.settings import Settings
from tests.support.settings import JWT_SECRET

ISSUER: str = Settings.model_fields["jwt_issuer"].default
AUDIENCE: str = Settings.model_fields["jwt_audience"].default


def codec(*, secret: str = JWT_SECRET, minutes: int = 1) -> TokenCodec:
    """The test servers' codec (their secret, issuer and audience), with access tokens of `minutes`."""
    return TokenCodec(secret=secret, issuer=ISSUER, audience=AUDIENCE, access_minutes=minutes)


def access_token(user_id: int, session_id: str, *, seconds_left: float, secret: str = JWT_SECRET) -> str:
    """A genuine access token of the session that expires in `seconds_left` (negative: expired that long ago)."""
    minutes = 1
    issued = datetime.now(UTC) - timedelta(minutes=minutes) + timedelta(seconds=seconds_left)
    return codec(secret=secret, minutes=minutes).issue_access(user_id, session_id, now=issued)


def access_claims(user_id: int, session_id: str) -> dict[str, Any]:
    """The claims of a valid access token, for tests that change or drop one of them."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "sid": session_id,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(8),
    }


def forge(claims: dict[str, Any], *, secret: str = JWT_SECRET, **changes: Any) -> str:
    """`claims` with `changes` applied (a value of None drops the claim), signed HS256 with `secret`."""
    merged = {**claims, **changes}
    return str(jwt.encode({k: v for k, v in merged.items() if v is not None}, secret, algorithm="HS256"))

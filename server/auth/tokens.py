"""JWTs (HS256) bound to this service and to a session: short-lived access tokens and rotating refresh tokens.

Every token carries `iss` and `aud` (settings), `sub` (the user), `sid` (the session), `typ`
(`access` or `refresh`), `iat`, `exp` and `jti`. Decoding pins the algorithm and requires each of
them, and the expected `typ`: an access token is never accepted where a refresh token is expected,
nor the other way round (RFC 8725 section 3.11, "Use explicit typing"). A refresh token's `jti` is
a random secret; the server stores only its SHA-256 (`refresh_hash`), so a copy of the database
does not hold usable tokens.

No token outlives its session's absolute lifetime (`SESSION_MAX_DAYS` from the session's start):
both `exp` are cut to it, so an access token stops at the session's end even between refreshes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from jose import ExpiredSignatureError, JWTError, jwt

from server.errors import AuthError
from server.fields import ID_MAX

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]
CLOCK_SKEW = timedelta(seconds=60)
"""How far in the future a token's `iat` may lie (clocks of several workers differ a little)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """A verified access token."""

    user_id: int
    session_id: str
    issued_at: datetime
    expires_at: datetime
    token_id: str
    """`jti`: names this one token (in logs, never the token itself)."""


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    """A verified refresh token; whether it is still the session's current one is the database's to say."""

    user_id: int
    session_id: str
    expires_at: datetime
    token_hash: str
    """SHA-256 (hex) of the token's secret `jti`: the key of its `refresh_tokens` row."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    refresh_hash: str
    expires_in: int
    """Seconds the access token is valid for (as OAuth's `expires_in`, RFC 6749 section 5.1)."""


def refresh_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenCodec:
    def __init__(
        self,
        *,
        secret: str,
        issuer: str,
        audience: str,
        access_minutes: int,
        refresh_days: float = 30.0,
        session_max_days: float = 30.0,
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.access_lifetime = timedelta(minutes=access_minutes)
        self.refresh_lifetime = timedelta(days=refresh_days)
        self.session_lifetime = timedelta(days=session_max_days)
        """A session's absolute lifetime: no token of it is valid past its start plus this."""

    def session_ends_at(self, started: datetime) -> datetime:
        """When a session started at `started` ends, however often it is refreshed."""
        return started + self.session_lifetime

    # --- issuing ------------------------------------------------------------------------------

    def issue_access(
        self, user_id: int, session_id: str, *, now: datetime | None = None, started: datetime | None = None
    ) -> str:
        """An access token; `started` is the session's start (default `now`: a new session)."""
        issued = _issued_at(now)
        expires = self._expiry(issued, self.access_lifetime, started)
        return self._encode("access", user_id, session_id, secrets.token_urlsafe(12), issued, expires)

    def issue_pair(
        self, user_id: int, session_id: str, *, now: datetime | None = None, started: datetime | None = None
    ) -> TokenPair:
        """A new access token and a new refresh token for the session started at `started` (default `now`)."""
        issued = _issued_at(now)
        access_expires = self._expiry(issued, self.access_lifetime, started)
        secret = secrets.token_urlsafe(32)
        return TokenPair(
            access_token=self._encode("access", user_id, session_id, secrets.token_urlsafe(12), issued, access_expires),
            refresh_token=self._encode(
                "refresh", user_id, session_id, secret, issued, self._expiry(issued, self.refresh_lifetime, started)
            ),
            refresh_hash=refresh_hash(secret),
            expires_in=int((access_expires - issued).total_seconds()),
        )

    def _expiry(self, issued: datetime, lifetime: timedelta, started: datetime | None) -> datetime:
        ends = self.session_ends_at(issued if started is None else started).replace(microsecond=0)
        return min(issued + lifetime, ends)

    def _encode(
        self, typ: TokenType, user_id: int, session_id: str, jti: str, issued: datetime, expires: datetime
    ) -> str:
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(user_id),
            "sid": session_id,
            "typ": typ,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": jti,
        }
        return str(jwt.encode(claims, self._secret, algorithm=ALGORITHM))

    # --- decoding -----------------------------------------------------------------------------

    def decode_access(self, token: str) -> TokenClaims:
        """Verify an access token; `AuthError` for anything else ("Token expired" when it ran out)."""
        claims = self._decode(token, "access")
        try:
            return TokenClaims(
                user_id=int(claims["sub"]),
                session_id=_session_id(claims),
                issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                token_id=str(claims["jti"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise AuthError("Could not validate credentials") from exc

    def decode_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, "refresh")
        try:
            jti = claims["jti"]
            if not isinstance(jti, str) or not jti:
                raise ValueError("jti")
            return RefreshClaims(
                user_id=int(claims["sub"]),
                session_id=_session_id(claims),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                token_hash=refresh_hash(jti),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise AuthError("Could not validate credentials") from exc

    def _decode(self, token: str, typ: TokenType) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # never trust the token's own `alg` header
                audience=self.audience,
                issuer=self.issuer,
                options={f"require_{name}": True for name in ("exp", "sub", "iat", "jti", "iss", "aud")},
            )
        except ExpiredSignatureError as exc:
            # Said apart from a bad token (RFC 6750 section 3.1 "The access token expired"): the client refreshes.
            raise AuthError("Token expired" if typ == "access" else "Refresh token expired") from exc
        except (JWTError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise AuthError("Could not validate credentials") from exc
        if claims.get("typ") != typ:
            raise AuthError("Could not validate credentials")
        sub = claims["sub"]
        # A user id as we write it: decimal digits naming a row that can exist (never "+1", " 1", "0").
        if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and sub[0] != "0" and int(sub) <= ID_MAX):
            raise AuthError("Could not validate credentials")
        try:
            issued_at = datetime.fromtimestamp(int(claims["iat"]), UTC)
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            raise AuthError("Could not validate credentials") from exc
        if issued_at > datetime.now(UTC) + CLOCK_SKEW:
            raise AuthError("Could not validate credentials")  # issued in the future
        return claims


def _issued_at(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)


def _session_id(claims: dict[str, Any]) -> str:
    sid = claims["sid"]
    if not isinstance(sid, str) or not 0 < len(sid) <= 64:
        raise ValueError("sid")
    return sid

"""JWT access tokens: HS256 with `sub`, `iat`, `exp` and `jti`; decoding pins the algorithm."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from jose import ExpiredSignatureError, JWTError, jwt

from server.errors import AuthError
from server.fields import ID_MAX

ALGORITHM = "HS256"
CLOCK_SKEW = timedelta(seconds=60)
"""How far in the future a token's `iat` may lie (clocks of several workers differ a little)."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    issued_at: datetime
    expires_at: datetime
    token_id: str
    """`jti`: lets a later revocation list name one token."""


class TokenCodec:
    def __init__(self, *, secret: str, expire_minutes: int) -> None:
        self._secret = secret
        self.lifetime = timedelta(minutes=expire_minutes)

    def issue(self, user_id: int, *, now: datetime | None = None) -> str:
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        claims = {
            "sub": str(user_id),
            "iat": int(issued.timestamp()),
            "exp": int((issued + self.lifetime).timestamp()),
            "jti": secrets.token_urlsafe(12),
        }
        return str(jwt.encode(claims, self._secret, algorithm=ALGORITHM))

    def decode(self, token: str) -> TokenClaims:
        """Verify signature, algorithm and expiry; raise `AuthError` for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # never trust the token's own `alg` header
                options={"require_exp": True, "require_sub": True, "require_iat": True},
            )
            sub, issued_at = claims["sub"], datetime.fromtimestamp(int(claims["iat"]), UTC)
            # A user id as we write it: decimal digits naming a row that can exist (never "+1", " 1", "0").
            if not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and sub[0] != "0" and int(sub) <= ID_MAX):
                raise ValueError("sub is not a user id")
            if issued_at > datetime.now(UTC) + CLOCK_SKEW:
                raise ValueError("issued in the future")
            return TokenClaims(
                user_id=int(sub),
                issued_at=issued_at,
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
                token_id=str(claims.get("jti", "")),
            )
        except ExpiredSignatureError as exc:
            # Said apart from a bad token (RFC 6750 section 3.1 "The access token expired"): the client refreshes.
            raise AuthError("Token expired") from exc
        except (JWTError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise AuthError("Could not validate credentials") from exc

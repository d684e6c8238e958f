"""JWT issue/decode: claims, pinned algorithm, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from jose import jwt

from server.auth.tokens import TokenCodec
from server.errors import AuthError

SECRET = "s" * 40


def test_round_trip_claims() -> None:
    codec = TokenCodec(secret=SECRET, expire_minutes=30)
    now = datetime.now(UTC)
    claims = codec.decode(codec.issue(42, now=now))
    assert claims.user_id == 42
    assert claims.expires_at - claims.issued_at == timedelta(minutes=30)
    assert claims.token_id
    raw = jwt.get_unverified_claims(codec.issue(42))
    assert set(raw) == {"sub", "iat", "exp", "jti"} and raw["sub"] == "42"
    assert jwt.get_unverified_header(codec.issue(42))["alg"] == "HS256"


def test_expired_token_is_rejected() -> None:
    codec = TokenCodec(secret=SECRET, expire_minutes=1)
    token = codec.issue(1, now=datetime.now(UTC) - timedelta(minutes=5))
    with pytest.raises(AuthError):
        codec.decode(token)


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "1", "iat": 0},
        {"iat": 0, "exp": 2**40},
        {"sub": "1", "exp": 2**40},
        {"sub": "x", "iat": 0, "exp": 2**40},
    ],
    ids=["no-exp", "no-sub", "no-iat", "non-numeric-sub"],
)
def test_required_claims(claims: dict[str, object]) -> None:
    codec = TokenCodec(secret=SECRET, expire_minutes=1)
    with pytest.raises(AuthError):
        codec.decode(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_algorithm_is_pinned() -> None:
    codec = TokenCodec(secret=SECRET, expire_minutes=1)
    claims = {"sub": "1", "iat": 0, "exp": 2**40}
    for algorithm in ("HS512", "HS384"):
        with pytest.raises(AuthError):
            codec.decode(jwt.encode(claims, SECRET, algorithm=algorithm))
    unsigned = jwt.encode(claims, SECRET, algorithm="HS256").rsplit(".", 1)[0] + "."
    with pytest.raises(AuthError):
        codec.decode(unsigned)


def test_other_secret_is_rejected() -> None:
    token = TokenCodec(secret="o" * 40, expire_minutes=1).issue(1)
    with pytest.raises(AuthError):
        TokenCodec(secret=SECRET, expire_minutes=1).decode(token)

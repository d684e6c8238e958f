"""JWT issue/decode: claims, binding to this service (iss, aud), token types, pinned algorithm, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jose import jwt

from server.auth.tokens import TokenCodec, refresh_hash
from server.errors import AuthError

SECRET = "s" * 40


def make_codec(**overrides: Any) -> TokenCodec:
    values: dict[str, Any] = {"secret": SECRET, "issuer": "todo-chat", "audience": "todo-chat", "access_minutes": 15}
    return TokenCodec(**{**values, **overrides})


def valid_claims(**changes: Any) -> dict[str, Any]:
    claims = {
        "iss": "todo-chat",
        "aud": "todo-chat",
        "sub": "1",
        "sid": "session-1",
        "typ": "access",
        "iat": 0,
        "exp": 2**33,
        "jti": "j",
    }
    merged = {**claims, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def test_access_token_round_trip() -> None:
    codec = make_codec()
    now = datetime.now(UTC)
    claims = codec.decode_access(codec.issue_access(42, "sid-42", now=now))
    assert claims.user_id == 42 and claims.session_id == "sid-42"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)
    assert claims.token_id
    raw = jwt.get_unverified_claims(codec.issue_access(42, "sid-42"))
    assert set(raw) == {"iss", "aud", "sub", "sid", "typ", "iat", "exp", "jti"}
    assert (raw["sub"], raw["typ"], raw["iss"], raw["aud"]) == ("42", "access", "todo-chat", "todo-chat")
    assert jwt.get_unverified_header(codec.issue_access(42, "s"))["alg"] == "HS256"


def test_pair_refresh_token_carries_a_secret_stored_only_as_its_hash() -> None:
    codec = make_codec(refresh_days=30)
    pair = codec.issue_pair(7, "sid-7")
    assert pair.expires_in == 15 * 60
    raw = jwt.get_unverified_claims(pair.refresh_token)
    assert raw["typ"] == "refresh" and raw["sid"] == "sid-7" and raw["sub"] == "7"
    assert raw["exp"] - raw["iat"] == 30 * 24 * 3600
    assert len(raw["jti"]) >= 40  # 32 random bytes
    assert pair.refresh_hash == refresh_hash(raw["jti"]) and raw["jti"] not in pair.refresh_hash
    claims = codec.decode_refresh(pair.refresh_token)
    assert (claims.user_id, claims.session_id, claims.token_hash) == (7, "sid-7", pair.refresh_hash)
    assert codec.issue_pair(7, "sid-7").refresh_hash != pair.refresh_hash


def test_access_and_refresh_tokens_are_never_interchangeable() -> None:
    codec = make_codec()
    pair = codec.issue_pair(1, "s")
    with pytest.raises(AuthError, match="Could not validate"):
        codec.decode_access(pair.refresh_token)
    with pytest.raises(AuthError, match="Could not validate"):
        codec.decode_refresh(pair.access_token)


def test_expired_tokens_say_so() -> None:
    codec = make_codec(access_minutes=1, refresh_days=1)
    long_ago = datetime.now(UTC) - timedelta(days=2)
    with pytest.raises(AuthError, match=r"^Token expired$"):
        codec.decode_access(codec.issue_access(1, "s", now=long_ago))
    with pytest.raises(AuthError, match=r"^Refresh token expired$"):
        codec.decode_refresh(codec.issue_pair(1, "s", now=long_ago).refresh_token)


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": None},
        {"sub": None},
        {"iat": None},
        {"sid": None},
        {"jti": None},
        {"typ": None},
        {"iss": None},
        {"aud": None},
        {"sub": "x"},
        {"sid": ""},
        {"sid": 5},
        {"sid": "x" * 65},
        {"typ": "refresh"},
        {"typ": "id"},
        {"iss": "someone-else"},
        {"aud": "another-service"},
        {"aud": ["another-service"]},
    ],
    ids=lambda changes: "-".join(f"{k}={v!r}"[:24] for k, v in changes.items()),
)
def test_required_and_bound_claims(changes: dict[str, Any]) -> None:
    codec = make_codec()
    codec.decode_access(jwt.encode(valid_claims(), SECRET, algorithm="HS256"))  # the baseline is accepted
    with pytest.raises(AuthError, match="Could not validate"):
        codec.decode_access(jwt.encode(valid_claims(**changes), SECRET, algorithm="HS256"))


def test_configured_issuer_and_audience_are_what_counts() -> None:
    ours, theirs = make_codec(issuer="a", audience="a"), make_codec(issuer="b", audience="b")
    with pytest.raises(AuthError):
        ours.decode_access(theirs.issue_access(1, "s"))
    assert ours.decode_access(ours.issue_access(1, "s")).user_id == 1


def test_algorithm_is_pinned() -> None:
    codec = make_codec()
    for algorithm in ("HS512", "HS384"):
        with pytest.raises(AuthError):
            codec.decode_access(jwt.encode(valid_claims(), SECRET, algorithm=algorithm))
    unsigned = jwt.encode(valid_claims(), SECRET, algorithm="HS256").rsplit(".", 1)[0] + "."
    with pytest.raises(AuthError):
        codec.decode_access(unsigned)


def test_other_secret_is_rejected() -> None:
    token = make_codec(secret="o" * 40).issue_access(1, "s")
    with pytest.raises(AuthError):
        make_codec().decode_access(token)


def test_no_token_outlives_its_session() -> None:
    codec = make_codec(refresh_days=30, session_max_days=1)
    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    fresh = codec.issue_pair(1, "s", now=now)  # a new session: the usual lifetimes
    assert fresh.expires_in == 15 * 60
    assert jwt.get_unverified_claims(fresh.refresh_token)["exp"] == int((now + timedelta(days=1)).timestamp())
    started = now - timedelta(days=1) + timedelta(minutes=5)
    near_end = codec.issue_pair(1, "s", now=now, started=started)
    end = int(codec.session_ends_at(started).timestamp())
    assert near_end.expires_in == 300
    assert jwt.get_unverified_claims(near_end.access_token)["exp"] == end
    assert jwt.get_unverified_claims(near_end.refresh_token)["exp"] == end

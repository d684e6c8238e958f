"""Signup, login and /me through the real app on both stacks."""

from __future__ import annotations

import secrets
import statistics
import time

import httpx
import pytest
from jose import jwt

from tests.support.settings import JWT_SECRET, PASSWORD
from tests.support.users import AppUser, MakeUser


def new_email() -> str:
    return f"auth-{secrets.token_hex(6)}@example.com"


async def test_signup_returns_id_email_and_tokens(client: httpx.AsyncClient) -> None:
    email = new_email()
    response = await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"id", "email", "token", "refresh_token", "expires_in", "session_id"}
    assert body["email"] == email
    assert isinstance(body["id"], str) and body["id"].isdigit()  # the seed's contract: a string id
    claims = jwt.get_unverified_claims(body["token"])
    assert claims["sub"] == body["id"] and claims["sid"] == body["session_id"] and claims["typ"] == "access"
    assert body["expires_in"] == 15 * 60
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == int(body["id"])
    tasks = await client.get(f"/api/{body['id']}/tasks", headers={"Authorization": f"Bearer {body['token']}"})
    assert tasks.status_code == 200  # the string id works as the path parameter


async def test_signup_stores_email_lower_case(client: httpx.AsyncClient) -> None:
    email = new_email()
    response = await client.post("/api/auth/signup", json={"email": email.upper(), "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["email"] == email.lower()


async def test_duplicate_email_is_409_case_insensitively(client: httpx.AsyncClient, user: AppUser) -> None:
    response = await client.post("/api/auth/signup", json={"email": user.email.upper(), "password": PASSWORD})
    assert response.status_code == 409
    assert response.json() == {"detail": "Email already registered", "code": "conflict"}


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "short@example.com", "password": "1234567"},
        {"email": "long@example.com", "password": "x" * 129},
        {"email": "missing@example.com"},
        {},
    ],
    ids=["bad-email", "short-password", "long-password", "no-password", "empty"],
)
async def test_signup_rejects_invalid_input(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "invalid"
    assert payload["detail"] and all({"loc", "msg", "type"} <= set(err) for err in payload["detail"])
    # Never echo what was sent: it could be a password.
    assert "x" * 129 not in response.text


async def test_login_succeeds_and_email_is_case_insensitive(client: httpx.AsyncClient, user: AppUser) -> None:
    response = await client.post("/api/auth/login", json={"email": user.email.upper(), "password": user.password})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(user.id) and body["email"] == user.email
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json() == {"id": user.id, "email": user.email, "created_at": me.json()["created_at"], "timezone": "UTC"}


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient, user: AppUser) -> None:
    wrong = await client.post("/api/auth/login", json={"email": user.email, "password": "wrong password"})
    unknown = await client.post("/api/auth/login", json={"email": new_email(), "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Incorrect email or password", "code": "unauthorized"}
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"


async def test_password_longer_than_72_bytes_is_not_truncated(client: httpx.AsyncClient) -> None:
    email = new_email()
    password = "p" * 100
    assert (await client.post("/api/auth/signup", json={"email": email, "password": password})).status_code == 201
    ok = await client.post("/api/auth/login", json={"email": email, "password": password})
    longer = await client.post("/api/auth/login", json={"email": email, "password": password + "q"})
    prefix = await client.post("/api/auth/login", json={"email": email, "password": password[:72]})
    assert ok.status_code == 200
    assert longer.status_code == 401
    assert prefix.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer " + "e30.e30.AAAA"],
    ids=["missing", "empty-bearer", "garbage", "basic", "unsigned"],
)
async def test_me_rejects_missing_or_bad_tokens(client: httpx.AsyncClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/api/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"


async def test_expired_and_foreign_tokens_are_rejected(client: httpx.AsyncClient, user: AppUser) -> None:
    from jose import jwt

    now = int(time.time())
    expired = jwt.encode({"sub": str(user.id), "iat": now - 7200, "exp": now - 3600}, JWT_SECRET, algorithm="HS256")
    forged = jwt.encode({"sub": str(user.id), "iat": now, "exp": now + 600}, "another-secret", algorithm="HS256")
    no_exp = jwt.encode({"sub": str(user.id), "iat": now}, JWT_SECRET, algorithm="HS256")
    for token in (expired, forged, no_exp):
        response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


async def test_login_timing_does_not_reveal_unknown_emails(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()

    async def timed(email: str) -> float:
        start = time.perf_counter()
        response = await client.post("/api/auth/login", json={"email": email, "password": "wrong password"})
        assert response.status_code == 401
        return time.perf_counter() - start

    known = [await timed(user.email) for _ in range(5)]
    unknown = [await timed(new_email()) for _ in range(5)]
    # Both paths run one bcrypt verification; without the dummy hash the unknown path would be
    # ~100x faster. A factor of 3 leaves room for machine noise.
    assert statistics.median(unknown) > statistics.median(known) / 3

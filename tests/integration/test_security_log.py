"""Security events: each authentication event writes one `server.security` line, with whom it concerns
(the user id, or a keyed hash of the email), the client's address, and never an email, password or token."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import orjson
import pytest
from sqlalchemy import text

from server.app import create_app
from server.auth.audit import AuditLog
from server.db.models import utcnow
from server.logs import make_formatter
from server.settings import Settings
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import JWT_SECRET
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser

CLIENT = "203.0.113.9"
"""The address a trusted proxy (the test client, on loopback) names in X-Forwarded-For."""
WRONG = "not the password at all"
FORWARDED = {"X-Forwarded-For": CLIENT}


@pytest.fixture(scope="module")
async def live(stack_settings: Settings, redis_prefix: str) -> AsyncIterator[LiveServer]:
    """The app behind a trusted proxy, with a per-account budget small enough to reach."""
    settings = stack_settings.model_copy(
        update={
            "redis_prefix": f"{redis_prefix}-audit-{secrets.token_hex(3)}",
            "trusted_proxies": ["127.0.0.1"],
            "rate_limit_login_account": "3/minute",
        }
    )
    async with serve_in_process(create_app(settings)) as server:
        yield server


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.base_url, timeout=TIMEOUT, headers=FORWARDED) as client:
        yield client


@pytest.fixture
async def account(http: httpx.AsyncClient) -> AppUser:
    email = f"Audit-{secrets.token_hex(6)}@Example.com"  # mixed case: the hash is of the normalised email
    response = await http.post("/api/auth/signup", json={"email": email, "password": "correct horse battery"})
    assert response.status_code == 201, response.text
    return AppUser.from_auth(response.json(), password="correct horse battery")


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "server.security" and getattr(r, "security_event", None) == name]


def json_line(record: logging.LogRecord) -> dict[str, object]:
    """The line as production writes it (LOG_FORMAT=json)."""
    line: dict[str, object] = orjson.loads(make_formatter("json").format(record))
    return line


def assert_no_secrets(caplog: pytest.LogCaptureFixture, *secrets_: str) -> None:
    security = [r for r in caplog.records if r.name == "server.security"]
    assert security
    for record in security:
        rendered = make_formatter("json").format(record) + record.getMessage()
        for secret in secrets_:
            assert secret.lower() not in rendered.lower()


async def test_failed_logins_name_the_account_by_a_keyed_hash_and_the_client(
    live: LiveServer, http: httpx.AsyncClient, account: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.security")
    unknown = f"nobody-{secrets.token_hex(6)}@example.com"
    assert (await http.post("/api/auth/login", json={"email": unknown, "password": WRONG})).status_code == 401
    wrong = await http.post("/api/auth/login", json={"email": account.email.upper(), "password": WRONG})
    assert wrong.status_code == 401
    again = await http.post("/api/auth/login", json={"email": f" {unknown.upper()} ", "password": WRONG})
    assert again.status_code == 401

    failed = [json_line(r) for r in events(caplog, "login.failed")]
    assert len(failed) == 3
    assert all(line["level"] == "warning" and line["client"] == CLIENT for line in failed)
    first, known, repeated = failed
    # The unknown account: a hash, the same for every spelling of the email, keyed (not a plain SHA-256).
    assert first["reason"] == "unknown_account" and "user_id" not in first
    assert first["account"] == repeated["account"] == live.runtime.audit.account(unknown)
    assert isinstance(first["account"], str) and len(first["account"]) == 32
    assert AuditLog(secret="another secret").account(unknown) != first["account"]
    assert known == {**known, "reason": "wrong_password", "user_id": account.id}
    assert_no_secrets(caplog, unknown, account.email, WRONG, JWT_SECRET)


async def test_a_refused_login_past_the_account_budget_is_logged(
    http: httpx.AsyncClient, account: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.security")
    body = {"email": account.email, "password": WRONG}
    statuses = [(await http.post("/api/auth/login", json=body)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    (limited,) = [json_line(r) for r in events(caplog, "login.rate_limited")]
    assert limited["client"] == CLIENT and limited["level"] == "warning"
    assert len(str(limited["account"])) == 32 and "user_id" not in limited  # the password was never checked
    assert_no_secrets(caplog, account.email, WRONG)


async def test_login_password_change_logout_all_and_deletion_are_logged_by_user_id(
    http: httpx.AsyncClient, account: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.security")
    login = await http.post("/api/auth/login", json={"email": account.email, "password": account.password})
    assert login.status_code == 200
    other = AppUser.from_auth(login.json(), password=account.password)
    headers = account.headers
    refused = await http.post(
        "/api/auth/password", json={"current_password": WRONG, "new_password": "another fine phrase"}, headers=headers
    )
    assert refused.status_code == 403
    changed = await http.post(
        "/api/auth/password",
        json={"current_password": account.password, "new_password": "another fine phrase"},
        headers=headers,
    )
    assert changed.status_code == 200
    fresh = AppUser.from_auth(changed.json(), password="another fine phrase")
    assert (await http.post("/api/auth/logout-all", headers=fresh.headers)).status_code == 204
    relogin = await http.post("/api/auth/login", json={"email": account.email, "password": fresh.password})
    last = AppUser.from_auth(relogin.json(), password=fresh.password)
    deleted = await http.request("DELETE", "/api/auth/me", json={"password": fresh.password}, headers=last.headers)
    assert deleted.status_code == 204

    def one(name: str) -> dict[str, object]:
        (line,) = [json_line(r) for r in events(caplog, name)]
        assert line["user_id"] == account.id and line["client"] == CLIENT
        return line

    assert one("password.confirm_failed")["level"] == "warning"
    assert one("password.changed")["sessions_ended"] == 1
    assert one("logout.all")["sessions_ended"] == 1
    assert one("account.deleted")["level"] == "info"
    assert len(events(caplog, "login.succeeded")) == 2
    secrets_ = [account.email, account.password, WRONG, fresh.password, account.refresh_token, other.token]
    assert_no_secrets(caplog, *secrets_, fresh.token, fresh.refresh_token, last.token, last.refresh_token)


async def test_refresh_reuse_and_an_expired_session_are_logged(
    live: LiveServer, http: httpx.AsyncClient, account: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.security")
    rotated = await http.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert rotated.status_code == 200
    new = AppUser.from_auth(rotated.json(), password=account.password)
    async with live.runtime.db() as session, session.begin():  # the rotation happened a minute ago
        connection = await session.connection()
        await connection.execute(
            text("UPDATE refresh_tokens SET rotated_at = :t WHERE session_id = :s AND rotated_at IS NOT NULL"),
            {"t": utcnow() - timedelta(minutes=1), "s": account.session_id},
        )
    reused = await http.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert reused.status_code == 401
    (line,) = [json_line(r) for r in events(caplog, "refresh.reused")]
    assert line["user_id"] == account.id and line["session_id"] == account.session_id and line["client"] == CLIENT
    assert [json_line(r)["reason"] for r in events(caplog, "refresh.failed")] == ["Session ended"]
    assert_no_secrets(caplog, account.refresh_token, new.refresh_token, new.token, account.email)

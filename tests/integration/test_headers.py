"""Security headers by kind of response, the docs switch, and an access log that never records query strings."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from server.app import create_app
from tests.support.live import serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import wait_until
from tests.support.users import AppUser

API_CSP = "default-src 'none'; frame-ancestors 'none'"


async def test_every_response_gets_the_common_headers_and_no_server_banner(
    client: httpx.AsyncClient, user: AppUser
) -> None:
    for response in [
        await client.get("/healthz"),
        await client.get("/api/nowhere"),
        await client.get(user.url("/tasks"), headers=user.headers),
        await client.get("/"),
        await client.get("/widget/chat-widget.js"),
        await client.get("/docs"),
    ]:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "server" not in response.headers
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers  # only when configured


async def test_token_responses_and_api_data_are_never_cached(client: httpx.AsyncClient, user: AppUser) -> None:
    login = await client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    assert "token" in login.json()
    for response in (login, await client.get(user.url("/tasks"), headers=user.headers), await client.get("/readyz")):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-security-policy"] == API_CSP


async def test_demo_page_and_widget_get_the_page_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-cache"  # the route's own choice wins
    widget = await client.get("/widget/chat-widget.js")
    assert widget.headers["content-security-policy"] == policy
    assert "cache-control" not in widget.headers and widget.headers["etag"]


async def test_hsts_when_configured_and_docs_off_in_production(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/prod.db",
        environment="production",
        bcrypt_rounds=12,
        hsts_max_age=31536000,
    )
    async with serve_in_process(create_app(settings)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        health = await http.get("/healthz")
        assert health.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404, path
    on = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/docs.db",
        environment="production",
        api_docs=True,
        bcrypt_rounds=12,
    )
    async with serve_in_process(create_app(on)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        assert (await http.get("/openapi.json")).status_code == 200


async def test_one_access_line_per_request_without_the_query_string(
    client: httpx.AsyncClient, user: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.access")
    response = await client.get(
        user.url("/tasks?status=all&access_token=s3cret"), headers={**user.headers, "X-Request-ID": "access-1"}
    )
    assert response.status_code == 200

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "server.access" and getattr(r, "request_id", None) == "access-1"]

    await wait_until(lambda: bool(lines()))  # written once the response is sent, so maybe just after we read it
    assert len(lines()) == 1
    message = lines()[0].getMessage()
    assert message.startswith(f"GET /api/{user.id}/tasks 200 ") and message.endswith("ms")
    assert "s3cret" not in message and "?" not in message

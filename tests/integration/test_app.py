"""The error model, probes and the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from server.app import create_app
from server.runtime import open_runtime
from tests.support.live import LiveServer, free_port, serve_in_process
from tests.support.settings import make_settings


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/nowhere")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found", "code": "not_found"}
    wrong_method = await client.put("/api/auth/login")
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "invalid"


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid"


async def test_unexpected_error_is_a_generic_500_with_request_id(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/boom.db"))

    async def boom() -> None:
        raise RuntimeError("secret internals: password_hash=$2b$12$abc")

    app.add_api_route("/boom", boom)
    caplog.set_level(logging.ERROR, logger="server")
    async with serve_in_process(app) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        response = await http.get("/boom", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "code": "internal", "request_id": "req-123"}
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-123"
    assert any("req-123" in record.getMessage() and record.exc_info for record in caplog.records)


async def test_request_ids_are_generated_and_sanitised(client: httpx.AsyncClient) -> None:
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 16
    hostile = await client.get("/healthz", headers={"X-Request-ID": "a b\tc" * 30})
    assert hostile.headers["x-request-id"] != "a b\tc" * 30


async def test_health_and_readiness(client: httpx.AsyncClient, server: LiveServer) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    expected_redis = "ok" if server.runtime.settings.redis_url else "disabled"
    assert ready.json() == {"status": "ready", "database": "ok", "redis": expected_redis}


async def test_readiness_is_degraded_not_failed_when_redis_is_unreachable_and_logs_why_once(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/ready.db", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    caplog.set_level(logging.WARNING, logger="server")
    async with serve_in_process(create_app(settings)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        response = await http.get("/readyz")
        again = await http.get("/readyz")
        assert (await http.get("/healthz")).status_code == 200
    assert response.status_code == again.status_code == 200  # chat keeps working: stay in the pool
    assert response.json() == {"status": "degraded", "database": "ok", "redis": "down"}
    reasons = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Readiness: redis is down")]
    assert len(reasons) == 1, reasons  # the reason, once per change rather than once per probe
    assert "onnect" in reasons[0]  # names the connection failure


async def test_cors_allows_only_configured_origins(tmp_path: object) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/cors.db", cors_origins="https://app.example.com"
    )
    async with serve_in_process(create_app(settings)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = await http.options("/api/auth/login", headers={"Origin": "https://app.example.com", **preflight})
        denied = await http.options("/api/auth/login", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in denied.headers


BEFORE_LOGIN = ("/api/auth/signup", "/api/auth/login", "/api/auth/refresh")
"""The auth routes that take no access token."""


async def test_openapi_documents_every_route_with_errors_and_bearer(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The access `token` from signup, login or refresh.",
    }
    expected = {
        ("post", "/api/auth/signup"),
        ("post", "/api/auth/login"),
        ("post", "/api/auth/refresh"),
        ("post", "/api/auth/logout"),
        ("post", "/api/auth/logout-all"),
        ("get", "/api/auth/sessions"),
        ("delete", "/api/auth/sessions/{session_id}"),
        ("post", "/api/auth/password"),
        ("get", "/api/auth/me"),
        ("delete", "/api/auth/me"),
        ("get", "/api/{user_id}/tasks"),
        ("post", "/api/{user_id}/tasks"),
        ("get", "/api/{user_id}/tasks/{task_id}"),
        ("patch", "/api/{user_id}/tasks/{task_id}"),
        ("delete", "/api/{user_id}/tasks/{task_id}"),
        ("patch", "/api/{user_id}/tasks/{task_id}/complete"),
        ("get", "/api/{user_id}/conversations"),
        ("get", "/api/{user_id}/conversations/{conversation_id}/messages"),
        ("delete", "/api/{user_id}/conversations/{conversation_id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
    }
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert expected <= documented
    for method, path in expected:
        operation = spec["paths"][path][method]
        if path.startswith("/api/{user_id}"):
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            assert operation["security"] == [{"HTTPBearer": []}]
        if "{task_id}" in path or "{conversation_id}" in path or "{session_id}" in path:
            assert "404" in operation["responses"], (method, path)
        if path.startswith("/api/auth/") and path not in BEFORE_LOGIN:
            assert "401" in operation["responses"] and operation["security"] == [{"HTTPBearer": []}], (method, path)
        if path in ("/api/auth/password", "/api/auth/me") and method != "get":
            assert "403" in operation["responses"], (method, path)
    assert (await client.get("/docs")).status_code == 200


async def test_shutdown_stops_and_awaits_every_background_task(tmp_path: object) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/tasks.db")
    before = set(asyncio.all_tasks())
    async with open_runtime(settings):
        started = {task.get_name() for task in asyncio.all_tasks() - before}
        assert "event-pruner" in started
    left = [task.get_name() for task in asyncio.all_tasks() - before if not task.done()]
    assert left == []

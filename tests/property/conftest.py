"""Fixtures for property-based tests: the app in a thread of its own (the clients here block), and a real user."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from server.app import create_app
from server.settings import Settings
from tests.support.live import LiveServer, serve_in_thread
from tests.support.settings import PASSWORD
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser


@pytest.fixture(scope="module")
def threaded_server(stack_settings: Settings) -> Iterator[LiveServer]:
    """The stack's app (same database and Redis as the rest of the run), with frame limits out of the way."""
    settings = stack_settings.model_copy(update={"ws_rate_per_second": 10_000.0, "ws_rate_burst": 10_000})
    with serve_in_thread(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="module")
def api_user(threaded_server: LiveServer) -> AppUser:
    email = f"prop-{secrets.token_hex(6)}@example.com"
    response = httpx.post(
        f"{threaded_server.base_url}/api/auth/signup", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return AppUser.from_auth(body, password=PASSWORD)

"""The CLI's token keeping: one refresh at a time, no refresh token presented twice, other processes' tokens used."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from client_demo.config import Login, TokenStore
from client_demo.credentials import REST_MARGIN, Credentials, refresh_delay

SERVER = "http://127.0.0.1:9"


class FakeAuth:
    """`POST /api/auth/refresh`: hands out numbered tokens, or refuses; records what it was sent."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.refuse = refuse
        self.presented: list[str] = []
        self.before_answer: Any = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/auth/refresh"
        self.presented.append(json.loads(request.content)["refresh_token"])
        if self.before_answer is not None:
            self.before_answer()
        if self.refuse:
            return httpx.Response(401, json={"detail": "Refresh token already used", "code": "unauthorized"})
        n = len(self.presented)
        body = {"id": "7", "email": "ada@example.com", "token": f"access-{n}", "refresh_token": f"refresh-{n}"}
        return httpx.Response(200, json={**body, "expires_in": 900, "session_id": "s"})


def make(tmp_path: Path, auth: FakeAuth, **login: Any) -> tuple[Credentials, TokenStore]:
    store = TokenStore(tmp_path)
    values = {"token": "access-0", "refresh_token": "refresh-0", "expires_at": None, **login}
    saved = Login(SERVER, "ada@example.com", 7, **values)
    store.save(saved)
    credentials = Credentials(store, saved, clock=lambda: 1000.0, transport=httpx.MockTransport(auth.handle))
    return credentials, store


async def test_refresh_replaces_and_saves_both_tokens(tmp_path: Path) -> None:
    auth = FakeAuth()
    credentials, store = make(tmp_path, auth)
    assert await credentials.refresh(stale="access-0") is True
    assert auth.presented == ["refresh-0"]
    saved = store.get(SERVER)
    assert saved == credentials.login
    assert (saved.token, saved.refresh_token, saved.expires_at) == ("access-1", "refresh-1", 1900.0)


async def test_concurrent_refreshes_in_one_process_present_the_token_once(tmp_path: Path) -> None:
    auth = FakeAuth()
    credentials, _ = make(tmp_path, auth)
    results = await asyncio.gather(*(credentials.refresh(stale="access-0") for _ in range(5)))
    assert results == [True] * 5 and auth.presented == ["refresh-0"]


async def test_tokens_another_process_saved_are_adopted_instead_of_refreshing(tmp_path: Path) -> None:
    auth = FakeAuth()
    credentials, store = make(tmp_path, auth)
    store.save(Login(SERVER, "ada@example.com", 7, "access-9", "refresh-9", 5000.0))  # another chat-demo refreshed
    assert await credentials.refresh(stale="access-0") is True
    assert auth.presented == [] and credentials.token == "access-9"


async def test_a_refused_token_is_never_presented_again(tmp_path: Path) -> None:
    auth = FakeAuth(refuse=True)
    credentials, store = make(tmp_path, auth)
    assert await credentials.refresh(stale="access-0") is False
    assert await credentials.refresh(stale="access-0") is False
    assert auth.presented == ["refresh-0"]
    saved = store.get(SERVER)
    assert saved is not None and saved.refresh_token is None and credentials.login.refresh_token is None


async def test_refused_because_another_process_just_refreshed_adopts_its_tokens(tmp_path: Path) -> None:
    auth = FakeAuth(refuse=True)
    credentials, store = make(tmp_path, auth)
    auth.before_answer = lambda: store.save(Login(SERVER, "ada@example.com", 7, "access-8", "refresh-8", 4000.0))
    assert await credentials.refresh(stale="access-0") is True
    assert credentials.token == "access-8" and store.get(SERVER) == credentials.login


async def test_fresh_token_refreshes_only_when_about_to_expire(tmp_path: Path) -> None:
    auth = FakeAuth()
    credentials, _ = make(tmp_path, auth, expires_at=1000.0 + REST_MARGIN + 1)
    assert await credentials.fresh_token() == "access-0" and auth.presented == []
    credentials, _ = make(tmp_path, auth, expires_at=1000.0 + REST_MARGIN - 1)
    assert await credentials.fresh_token() == "access-1" and auth.presented == ["refresh-0"]
    credentials, _ = make(tmp_path, FakeAuth(), expires_at=None)  # unknown: the server's 401 will say
    assert await credentials.fresh_token() == "access-0"


def test_a_socket_refreshes_a_minute_before_expiry_or_a_fifth_of_a_short_life_before() -> None:
    assert refresh_delay(900.0, now=0.0, received_at=0.0) == 840.0
    assert refresh_delay(60.0, now=0.0, received_at=0.0) == 48.0
    assert refresh_delay(3.0, now=0.0, received_at=0.0) == 2.0  # at least a second ahead
    assert refresh_delay(100.0, now=200.0, received_at=0.0) == 0.0  # already late: at once

"""Test users: a signed-up account with its tokens, and the helpers that build request URLs for it."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.settings import PASSWORD
from tests.support.timing import TIMEOUT


@dataclass
class AppUser:
    id: int
    email: str
    password: str
    token: str
    """The access token."""
    refresh_token: str
    session_id: str

    @classmethod
    def from_auth(cls, body: dict[str, Any], *, password: str) -> AppUser:
        """From a signup or login response."""
        return cls(
            id=int(body["id"]),
            email=body["email"],
            password=password,
            token=body["token"],
            refresh_token=body["refresh_token"],
            session_id=body["session_id"],
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"/api/{self.id}{path}"


MakeUser = Callable[[], Awaitable[AppUser]]


async def signup(base_url: str, *, email: str | None = None, password: str = PASSWORD) -> AppUser:
    """A new account on the server at `base_url` (unique email unless one is given)."""
    email = email or f"user-{secrets.token_hex(6)}@example.com"
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        response = await client.post("/api/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    return AppUser.from_auth(response.json(), password=password)


async def login(base_url: str, user: AppUser, *, device: str | None = None) -> AppUser:
    """Another session of `user` (another device), as a new `AppUser` with its own tokens."""
    body: dict[str, str] = {"email": user.email, "password": user.password}
    if device is not None:
        body["device"] = device
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 200, response.text
    return AppUser.from_auth(response.json(), password=user.password)

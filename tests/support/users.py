"""Test users: a signed-up account with its token, and the helpers that build request URLs for it."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tests.support.settings import PASSWORD
from tests.support.timing import TIMEOUT


@dataclass
class AppUser:
    id: int
    email: str
    password: str
    token: str

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
    body = response.json()
    return AppUser(id=int(body["id"]), email=email, password=password, token=body["token"])

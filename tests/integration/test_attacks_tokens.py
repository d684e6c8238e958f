"""Forged and tampered JWTs on every way in: REST, the socket's header, its `auth` frame, `auth.refresh`, and MCP.

Each forgery is refused everywhere (401, close 4401, `error unauthorized`), and the server
still answers afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import httpx
import orjson
import pytest
import rsa
from jose import jwt

from tests.support.live import LiveServer
from tests.support.settings import JWT_SECRET
from tests.support.tokens import access_claims
from tests.support.users import AppUser
from tests.support.wsclient import WSClient

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "attacker", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    """A token with the given `alg` header and an empty signature."""
    header = _b64(orjson.dumps({"alg": alg, "typ": "JWT"}))
    return f"{header}.{_b64(orjson.dumps(claims))}."


@cache
def rsa_key() -> tuple[str, str]:
    """A throwaway RSA key pair (private, public) as PEM: what an attacker would sign RS256 with."""
    public, private = rsa.newkeys(1024)
    return private.save_pkcs1().decode(), public.save_pkcs1().decode()


def claims_for(user: AppUser, **changes: Any) -> dict[str, Any]:
    """A genuine access token's claims (this service's iss/aud, the user's live session), then `changes`."""
    claims: dict[str, Any] = access_claims(user.id, user.session_id)
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def signed(claims: dict[str, Any], *, key: str = JWT_SECRET, alg: str = "HS256") -> str:
    return str(jwt.encode(claims, key, algorithm=alg))


FORGERIES: dict[str, Callable[[AppUser], str]] = {
    "alg-none": lambda user: unsigned(claims_for(user)),
    "alg-none-uppercase": lambda user: unsigned(claims_for(user), alg="None"),
    "hs256-signature-stripped": lambda user: signed(claims_for(user)).rsplit(".", 1)[0] + ".",
    "hs256-another-key": lambda user: signed(claims_for(user), key="another-secret-" + "y" * 40),
    "hs512-right-key": lambda user: signed(claims_for(user), alg="HS512"),  # the algorithm is pinned
    "rs256-attacker-key": lambda user: signed(claims_for(user), key=rsa_key()[0], alg="RS256"),
    "hs256-keyed-with-a-public-key": lambda user: hmac_signed(claims_for(user), key=rsa_key()[1]),  # RS/HS confusion
    "payload-swapped": lambda user: _swap_payload(signed(claims_for(user)), claims_for(user, sub="1")),
    "expired": lambda user: signed(claims_for(user, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)),
    "missing-sub": lambda user: signed(claims_for(user, sub=None)),
    "non-numeric-sub": lambda user: signed(claims_for(user, sub="admin")),
    "numeric-not-string-sub": lambda user: signed(claims_for(user, sub=user.id)),
    "zero-sub": lambda user: signed(claims_for(user, sub="0")),
    "out-of-range-sub": lambda user: signed(claims_for(user, sub=str(2**31))),
    "huge-sub": lambda user: signed(claims_for(user, sub=str(2**70))),
    "future-iat": lambda user: signed(claims_for(user, iat=int(time.time()) + 3600, exp=int(time.time()) + 7200)),
    "missing-iat": lambda user: signed(claims_for(user, iat=None)),
    "missing-exp": lambda user: signed(claims_for(user, exp=None)),
    "absurd-exp": lambda user: signed(claims_for(user, exp=10**20)),
    "not-a-jwt": lambda user: "definitely.not.a-jwt",
}


def hmac_signed(claims: dict[str, Any], *, key: str) -> str:
    """HS256 by hand, keyed with anything (the library refuses to use a PEM as an HMAC secret)."""
    signing_input = f"{_b64(orjson.dumps({'alg': 'HS256', 'typ': 'JWT'}))}.{_b64(orjson.dumps(claims))}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    """Keep the signature, change the claims: another user's id under a valid signature."""
    header, _, signature = token.split(".")
    return f"{header}.{_b64(orjson.dumps(claims))}.{signature}"


async def assert_still_answers(client: httpx.AsyncClient, user: AppUser) -> None:
    assert (await client.get("/healthz")).status_code == 200
    response = await client.get(user.url("/tasks"), headers=user.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_tokens_are_refused_everywhere(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser, forgery: str
) -> None:
    token = FORGERIES[forgery](user)
    bearer = {"Authorization": f"Bearer {token}"}

    for path in ("/api/auth/me", user.url("/tasks")):
        response = await client.get(path, headers=bearer)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"

    mcp = await client.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer})
    assert mcp.status_code == 401 and mcp.json()["code"] == "unauthorized"

    by_header = await WSClient.open(server.ws_url, None, headers=bearer, expect_hello=False)
    assert (await by_header.closed())[0] == 4401
    by_frame = await WSClient.open(server.ws_url, None, expect_hello=False)
    await by_frame.send({"type": "auth", "token": token})
    assert (await by_frame.closed())[0] == 4401

    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "auth.refresh", "token": token})
        assert (await ws.receive("error"))["code"] == "unauthorized"
        await ws.send({"type": "ping", "id": "after"})  # the socket keeps its own, valid session
        await ws.receive("pong", id="after")

    await assert_still_answers(client, user)


async def test_the_genuine_token_passes_the_same_checks(
    client: httpx.AsyncClient, server: LiveServer, user: AppUser
) -> None:
    """The forgeries above differ from a real token only in what they forge."""
    token = signed(claims_for(user))
    assert (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    async with await WSClient.open(server.ws_url, token, via="frame") as ws:
        assert ws.hello["user_id"] == user.id

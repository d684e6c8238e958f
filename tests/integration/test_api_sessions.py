"""Sessions on both stacks: refresh rotation and reuse, logout, the session list, password change, account
deletion, and the one token check on every surface (REST, socket header, socket `auth` frame, MCP)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from jose import jwt
from sqlalchemy import bindparam, text

from server.db.models import utcnow
from tests.support import users
from tests.support.live import LiveServer
from tests.support.settings import PASSWORD
from tests.support.tokens import access_claims, forge
from tests.support.users import AppUser, MakeUser
from tests.support.wsclient import WSClient

MCP_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})


async def refreshed(client: httpx.AsyncClient, user: AppUser) -> AppUser:
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200, response.text
    return AppUser.from_auth(response.json(), password=user.password)


async def surfaces(server: LiveServer, client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """What each surface answers to `token`: HTTP status for REST and MCP, close code (or "hello") for sockets."""
    answers: dict[str, Any] = {}
    answers["rest"] = (await client.get("/api/auth/me", headers=bearer(token))).status_code
    mcp = await client.post("/mcp", json=MCP_INITIALIZE, headers={**MCP_HEADERS, **bearer(token)})
    answers["mcp"] = mcp.status_code
    for via in ("header", "frame"):
        ws = await WSClient.open(server.ws_url, token, via=via, expect_hello=False)
        first = await ws.next_or_close()
        answers[f"ws-{via}"] = first["type"] if isinstance(first, dict) else first
        await ws.close()
    return answers


ACCEPTED = {"rest": 200, "mcp": 200, "ws-header": "hello", "ws-frame": "hello"}
REFUSED = {"rest": 401, "mcp": 401, "ws-header": 4401, "ws-frame": 4401}


async def rows_of(server: LiveServer, user_id: int, session_ids: list[str]) -> dict[str, int]:
    """The user's rows in every table that holds any."""
    counts = {}
    async with server.runtime.reads() as session:
        connection = await session.connection()
        for table in ("users", "tasks", "conversations", "messages", "events", "sessions"):
            column = "id" if table == "users" else "user_id"
            query = text(f"SELECT count(*) FROM {table} WHERE {column} = :u")  # noqa: S608  names from the list above
            counts[table] = int((await connection.execute(query, {"u": user_id})).scalar_one())
        query = text("SELECT count(*) FROM refresh_tokens WHERE session_id IN :ids").bindparams(
            bindparam("ids", expanding=True)
        )
        counts["refresh_tokens"] = int((await connection.execute(query, {"ids": session_ids})).scalar_one())
    return counts


# --- refresh ----------------------------------------------------------------------------------


async def test_refresh_rotates_and_the_new_tokens_work(client: httpx.AsyncClient, user: AppUser) -> None:
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    again = AppUser.from_auth(response.json(), password=user.password)
    assert again.id == user.id and again.session_id == user.session_id
    assert again.token != user.token and again.refresh_token != user.refresh_token
    assert (await client.get("/api/auth/me", headers=again.headers)).status_code == 200
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200  # same session, not expired
    third = await refreshed(client, again)  # and the new refresh token rotates in turn
    assert (await client.get("/api/auth/me", headers=third.headers)).status_code == 200


async def test_a_just_rotated_token_is_refused_without_ending_the_session(
    client: httpx.AsyncClient, user: AppUser
) -> None:
    new = await refreshed(client, user)
    racing = await refresh(client, user.refresh_token)  # a second tab with the same token, a moment later
    assert racing.status_code == 401
    assert racing.json() == {"detail": "Refresh token already used", "code": "unauthorized"}
    assert (await client.get("/api/auth/me", headers=new.headers)).status_code == 200
    assert (await refreshed(client, new)).session_id == user.session_id


async def test_reuse_after_the_leeway_ends_the_whole_session(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser, caplog: pytest.LogCaptureFixture
) -> None:
    new = await refreshed(client, user)
    async with server.runtime.db() as session, session.begin():  # the rotation happened a minute ago
        connection = await session.connection()
        await connection.execute(
            text("UPDATE refresh_tokens SET rotated_at = :t WHERE session_id = :s AND rotated_at IS NOT NULL"),
            {"t": utcnow() - timedelta(minutes=1), "s": user.session_id},
        )
    async with await WSClient.open(server.ws_url, new.token) as ws:
        stolen = await refresh(client, user.refresh_token)
        assert stolen.status_code == 401 and stolen.json()["detail"] == "Session ended"
        assert await ws.closed() == (4401, "session ended")
    assert (await client.get("/api/auth/me", headers=new.headers)).status_code == 401
    assert (await refresh(client, new.refresh_token)).status_code == 401  # the rightful user's token too
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "reuse" in r.getMessage()]
    assert len(warnings) == 1 and user.session_id in warnings[0].getMessage()
    assert user.refresh_token not in caplog.text and new.refresh_token not in caplog.text


async def age_session(server: LiveServer, session_id: str, by: timedelta) -> None:
    """Make the session have started `by` ago."""
    async with server.runtime.db() as session, session.begin():
        connection = await session.connection()
        await connection.execute(
            text("UPDATE sessions SET created_at = :t WHERE id = :s"), {"t": utcnow() - by, "s": session_id}
        )


async def test_tokens_never_outlive_the_session_max_age(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    max_age = timedelta(days=server.runtime.settings.session_max_days)
    await age_session(server, user.session_id, max_age - timedelta(minutes=5))
    near_end = await refresh(client, user.refresh_token)
    assert near_end.status_code == 200
    assert 0 < near_end.json()["expires_in"] <= 300  # cut to the session's end, not ACCESS_TOKEN_MINUTES
    for token in (near_end.json()["token"], near_end.json()["refresh_token"]):
        claims = jwt.get_unverified_claims(token)
        assert claims["exp"] - claims["iat"] <= 300


async def test_a_session_past_the_max_age_cannot_be_refreshed_and_ends(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    await age_session(server, user.session_id, timedelta(days=server.runtime.settings.session_max_days, seconds=1))
    expired = await refresh(client, user.refresh_token)
    assert expired.status_code == 401
    assert expired.json() == {"detail": "Session expired, log in again", "code": "unauthorized"}
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 401  # the session is gone
    assert (await refresh(client, user.refresh_token)).json()["detail"] == "Session ended"


async def test_access_and_refresh_tokens_are_not_interchangeable(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    assert (await refresh(client, user.token)).status_code == 401
    assert await surfaces(server, client, user.refresh_token) == REFUSED
    assert await surfaces(server, client, user.token) == ACCEPTED  # neither was spent by trying


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "someone-else"},
        {"aud": "another-service"},
        {"iss": None},
        {"aud": None},
        {"typ": "refresh"},
        {"typ": None},
        {"sid": None},
        {"sid": "no-such-session"},
        {"sub": "999999999"},
    ],
    ids=["wrong-iss", "wrong-aud", "no-iss", "no-aud", "typ-refresh", "no-typ", "no-sid", "unknown-sid", "other-sub"],
)
async def test_tokens_not_bound_to_this_service_or_a_live_session_are_refused_everywhere(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser, changes: dict[str, Any]
) -> None:
    genuine = access_claims(user.id, user.session_id)
    assert await surfaces(server, client, forge(genuine)) == ACCEPTED  # the same claims, unchanged, pass
    assert await surfaces(server, client, forge(genuine, **changes)) == REFUSED


async def test_refresh_rejects_garbage(client: httpx.AsyncClient) -> None:
    for body in ({"refresh_token": "not-a-jwt"}, {"refresh_token": ""}, {}):
        response = await client.post("/api/auth/refresh", json=body)
        assert response.status_code in (401, 422), body
        assert response.json()["code"] in ("unauthorized", "invalid")


# --- logout and the session list --------------------------------------------------------------


async def test_logout_ends_this_session_only(server: LiveServer, client: httpx.AsyncClient, user: AppUser) -> None:
    other = await users.login(server.base_url, user)
    async with (
        await WSClient.open(server.ws_url, user.token) as mine,
        await WSClient.open(server.ws_url, other.token, via="frame") as theirs,
    ):
        assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200  # cached as alive
        response = await client.post("/api/auth/logout", headers=user.headers)
        assert response.status_code == 204
        assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 401  # at once
        assert await mine.closed() == (4401, "session ended")
        await theirs.send({"type": "ping", "id": 1})
        assert (await theirs.receive("pong"))["id"] == 1
    assert (await refresh(client, user.refresh_token)).status_code == 401
    assert (await client.get("/api/auth/me", headers=other.headers)).status_code == 200
    assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 401


async def test_logout_all_ends_every_session(server: LiveServer, client: httpx.AsyncClient, user: AppUser) -> None:
    other = await users.login(server.base_url, user)
    async with await WSClient.open(server.ws_url, other.token) as ws:
        assert (await client.post("/api/auth/logout-all", headers=user.headers)).status_code == 204
        assert await ws.closed() == (4401, "session ended")
    for session in (user, other):
        assert await surfaces(server, client, session.token) == REFUSED
        assert (await refresh(client, session.refresh_token)).status_code == 401


async def test_the_session_list(server: LiveServer, client: httpx.AsyncClient, user: AppUser) -> None:
    phone = await users.login(server.base_url, user, device="Ada's phone")
    laptop_login = await client.post(
        "/api/auth/login",
        json={"email": user.email, "password": user.password},
        headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)\t\t Firefox/140.0 " + "x" * 200},
    )
    laptop = AppUser.from_auth(laptop_login.json(), password=user.password)
    await refreshed(client, phone)  # the phone was used last

    response = await client.get("/api/auth/sessions", headers=laptop.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and body["data"][0]["id"] == laptop.session_id  # it just asked
    by_id = {s["id"]: s for s in body["data"]}
    assert set(by_id) == {user.session_id, phone.session_id, laptop.session_id}
    assert set(by_id[phone.session_id]) == {"id", "device", "created_at", "last_used_at", "current"}
    assert by_id[phone.session_id]["device"] == "Ada's phone"
    assert by_id[laptop.session_id]["device"].startswith("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0 xx")
    assert len(by_id[laptop.session_id]["device"]) == 100
    assert by_id[user.session_id]["device"].startswith("python-httpx/")
    assert [s["current"] for s in body["data"]].count(True) == 1 and by_id[laptop.session_id]["current"]
    assert by_id[phone.session_id]["last_used_at"] > by_id[phone.session_id]["created_at"]


@pytest.mark.parametrize("device", ["x" * 101, "nul\x00inside"], ids=["too-long", "nul"])
async def test_a_bad_device_label_is_invalid(client: httpx.AsyncClient, user: AppUser, device: str) -> None:
    body = {"email": user.email, "password": user.password, "device": device}
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 422 and response.json()["code"] == "invalid"


async def test_ending_one_session(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser, make_user: MakeUser
) -> None:
    stranger = await make_user()
    other = await users.login(server.base_url, user)
    async with await WSClient.open(server.ws_url, other.token) as ws:
        for sid in (stranger.session_id, "no-such-session"):  # another user's session looks like no session
            response = await client.delete(f"/api/auth/sessions/{sid}", headers=user.headers)
            assert response.status_code == 404
            assert response.json() == {"detail": "Session not found", "code": "not_found"}
        assert (await client.get("/api/auth/me", headers=stranger.headers)).status_code == 200
        response = await client.delete(f"/api/auth/sessions/{other.session_id}", headers=user.headers)
        assert response.status_code == 204
        assert await ws.closed() == (4401, "session ended")
    assert await surfaces(server, client, other.token) == REFUSED
    assert (await client.get("/api/auth/me", headers=user.headers)).status_code == 200
    sessions = (await client.get("/api/auth/sessions", headers=user.headers)).json()
    assert [s["id"] for s in sessions["data"]] == [user.session_id]


async def test_auth_refresh_moves_a_socket_to_another_session(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser, make_user: MakeUser
) -> None:
    other = await users.login(server.base_url, user)
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.send({"type": "auth.refresh", "token": other.token})
        await ws.receive("auth.refreshed")
        assert (await client.post("/api/auth/logout", headers=user.headers)).status_code == 204
        await ws.send({"type": "ping", "id": "still-open"})  # the socket belongs to the other session now
        assert (await ws.receive("pong"))["id"] == "still-open"
        ended = await users.login(server.base_url, user)
        assert (await client.post("/api/auth/logout", headers=ended.headers)).status_code == 204
        await ws.send({"type": "auth.refresh", "token": ended.token})  # a token of an ended session
        assert (await ws.receive("error"))["code"] == "unauthorized"
        assert (await client.post("/api/auth/logout", headers=other.headers)).status_code == 204
        assert await ws.closed() == (4401, "session ended")


# --- password and account -----------------------------------------------------------------------


async def test_password_change_ends_the_other_sessions(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser
) -> None:
    other = await users.login(server.base_url, user)
    body = {"current_password": "not my password", "new_password": "a whole new secret"}
    wrong = await client.post("/api/auth/password", json=body, headers=user.headers)
    assert wrong.status_code == 403 and wrong.json() == {"detail": "Incorrect password", "code": "forbidden"}
    assert (await client.get("/api/auth/me", headers=other.headers)).status_code == 200

    async with (
        await WSClient.open(server.ws_url, other.token) as theirs,
        await WSClient.open(server.ws_url, user.token) as mine,
    ):
        body["current_password"] = user.password
        response = await client.post("/api/auth/password", json=body, headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert await theirs.closed() == (4401, "session ended")
        await mine.send({"type": "ping", "id": 2})  # this session goes on, sockets included
        assert (await mine.receive("pong"))["id"] == 2
    fresh = AppUser.from_auth(response.json(), password=body["new_password"])
    assert fresh.session_id == user.session_id
    assert await surfaces(server, client, other.token) == REFUSED
    assert (await refresh(client, other.refresh_token)).status_code == 401
    assert (await refresh(client, user.refresh_token)).json()["detail"] == "Session ended"  # forgotten, not reused
    assert (await client.get("/api/auth/me", headers=fresh.headers)).status_code == 200  # ... so this one lives
    assert (await refreshed(client, fresh)).session_id == user.session_id
    old = await client.post("/api/auth/login", json={"email": user.email, "password": user.password})
    new = await client.post("/api/auth/login", json={"email": user.email, "password": body["new_password"]})
    assert (old.status_code, new.status_code) == (401, 200)


async def test_password_change_enforces_the_password_rules(client: httpx.AsyncClient, user: AppUser) -> None:
    body = {"current_password": user.password, "new_password": "short"}
    response = await client.post("/api/auth/password", json=body, headers=user.headers)
    assert response.status_code == 422


async def test_account_deletion_removes_everything_and_closes_the_sockets(
    server: LiveServer, client: httpx.AsyncClient, user: AppUser, make_user: MakeUser
) -> None:
    bystander = await make_user()
    other = await users.login(server.base_url, user)
    await client.post(user.url("/tasks"), json={"title": "to be forgotten"}, headers=user.headers)
    async with await WSClient.open(server.ws_url, user.token) as ws:
        await ws.chat("hello")
        await ws.receive("turn.end")
    sids = [user.session_id, other.session_id]
    before = await rows_of(server, user.id, sids)
    assert all(count > 0 for count in before.values()), before

    wrong = await client.request("DELETE", "/api/auth/me", json={"password": "nope"}, headers=user.headers)
    assert wrong.status_code == 403
    async with (
        await WSClient.open(server.ws_url, other.token) as ws_other,
        await WSClient.open(server.ws_url, user.token, via="frame") as ws_mine,
    ):
        response = await client.request("DELETE", "/api/auth/me", json={"password": PASSWORD}, headers=user.headers)
        assert response.status_code == 204
        assert await ws_other.closed() == (4401, "session ended")
        assert await ws_mine.closed() == (4401, "session ended")
    assert await rows_of(server, user.id, sids) == dict.fromkeys(before, 0)
    for session in (user, other):
        assert await surfaces(server, client, session.token) == REFUSED
        assert (await refresh(client, session.refresh_token)).status_code == 401
    assert (await client.get("/api/auth/me", headers=bystander.headers)).status_code == 200
    again = await client.post("/api/auth/signup", json={"email": user.email, "password": PASSWORD})
    assert again.status_code == 201 and int(again.json()["id"]) != user.id

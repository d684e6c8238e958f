"""PostgreSQL goes away and comes back: clear 503s and `unavailable` frames meanwhile, nothing half-done."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from server.app import create_app
from tests.support import services
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import PASSWORD, make_settings
from tests.support.wsclient import WSClient


@pytest.fixture
async def outage_db() -> AsyncIterator[services.PostgresDatabase]:
    database = await services.create_postgres_database("outage")
    try:
        yield database
    finally:
        await set_connections(database, allowed=True)
        await database.drop()


async def set_connections(database: services.PostgresDatabase, *, allowed: bool) -> None:
    admin = await asyncpg.connect(services._asyncpg_dsn(services.PG_ADMIN_URL))
    try:
        await admin.execute(f'ALTER DATABASE "{database.name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:  # and cut the pool's existing connections
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database.name
            )
    finally:
        await admin.close()


@pytest.fixture
async def live(outage_db: services.PostgresDatabase) -> AsyncIterator[LiveServer]:
    async with serve_in_process(create_app(make_settings(database_url=outage_db.url))) as server:
        yield server


async def test_outage_answers_clearly_and_recovers(live: LiveServer, outage_db: services.PostgresDatabase) -> None:
    async with httpx.AsyncClient(base_url=live.base_url) as http:
        body = (await http.post("/api/auth/signup", json={"email": "o@example.com", "password": PASSWORD})).json()
        headers = {"Authorization": f"Bearer {body['token']}"}
        tasks_url = f"/api/{body['id']}/tasks"
        again = (await http.post("/api/auth/login", json={"email": "o@example.com", "password": PASSWORD})).json()
        async with await WSClient.open(live.ws_url, body["token"]) as ws:
            await set_connections(outage_db, allowed=False)

            response = await http.get(tasks_url, headers=headers)
            assert response.status_code == 503
            assert response.json()["code"] == "unavailable" and response.headers["retry-after"]
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["database"] == "down"

            await ws.chat("while the database is down", client_msg_id="during-outage")
            error = await ws.receive("error")
            assert error["code"] == "unavailable" and error["ref"] == "during-outage"
            await ws.send({"type": "ping", "id": "alive"})
            await ws.receive("pong", id="alive")

            # A socket whose session this worker has not checked yet: not refused as unauthenticated.
            newcomer = await WSClient.open(live.ws_url, again["token"], expect_hello=False)
            assert await newcomer.closed() == (1011, "storage unavailable, retry shortly")

            await set_connections(outage_db, allowed=True)
            await ws.chat("while the database is down", client_msg_id="during-outage")  # the client's retry
            ack = await ws.receive("ack")
            await ws.receive("turn.end", turn_id=ack["turn_id"])
            assert (await http.get(tasks_url, headers=headers)).status_code == 200
        history = await http.get(f"/api/{body['id']}/conversations/{ack['conversation_id']}/messages", headers=headers)
    assert [m["content"] for m in history.json()["data"] if m["role"] == "user"] == ["while the database is down"]


async def test_a_reply_survives_a_database_blip_as_the_turn_ends(
    outage_db: services.PostgresDatabase, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(
        database_url=outage_db.url, redis_url=redis_url, redis_prefix=redis_prefix, echo_chunk_delay=0.01
    )
    async with serve_in_process(create_app(settings)) as live, httpx.AsyncClient(base_url=live.base_url) as http:
        body = (await http.post("/api/auth/signup", json={"email": "b@example.com", "password": PASSWORD})).json()
        async with await WSClient.open(live.ws_url, body["token"]) as ws:
            await ws.chat("y" * 400)
            ack = await ws.receive("ack")
            await ws.receive("delta")
            await cut_connections(outage_db)  # PostgreSQL restarts while the reply streams
            end = await ws.receive("turn.end", turn_id=ack["turn_id"])
        assert end["status"] == "done" and end["message_id"] and "seq" in end
        headers = {"Authorization": f"Bearer {body['token']}"}
        history = await http.get(f"/api/{body['id']}/conversations/{ack['conversation_id']}/messages", headers=headers)
    assert history.json()["data"][-1]["content"] == "Echo: " + "y" * 400


async def cut_connections(database: services.PostgresDatabase) -> None:
    admin = await asyncpg.connect(services._asyncpg_dsn(services.PG_ADMIN_URL))
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database.name)
    finally:
        await admin.close()

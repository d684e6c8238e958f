"""The baseline peer: a minimal FastAPI + asyncpg + Redis pub/sub chat server, in one file.

What a competent hand-rolled chat backend does for a plain message, and nothing more: on a
`chat` frame it inserts one row (asyncpg, one prepared statement, autocommit), acks the sender,
and publishes the message on the user's Redis channel; every worker subscribes (one pub/sub
connection per worker, as with broadcaster) to the channels of the users it has sockets for
and writes the message to those sockets. No seqs, no replay, no turn, no limits, no auth
beyond an id in the token. `bench.compare` runs it beside the service, in the same run, to
compare this service's turn ceiling with this peer's message ceiling.

Run: `uvicorn bench.peer:app` with PEER_DATABASE_URL (asyncpg DSN) and PEER_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import asyncpg
import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

DSN = os.environ.get("PEER_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/todochat_bench")
REDIS = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0")
SCHEMA = """
CREATE TABLE IF NOT EXISTS peer_users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS peer_messages (
    id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES peer_users (id),
    client_msg_id text NOT NULL, content text NOT NULL, created_at timestamptz NOT NULL DEFAULT now()
);
"""
INSERT = "INSERT INTO peer_messages (user_id, client_msg_id, content) VALUES ($1, $2, $3) RETURNING id"


class Peer:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.redis: aioredis.Redis | None = None
        self.pubsub: aioredis.client.PubSub | None = None
        self.sockets: dict[int, set[WebSocket]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(DSN, min_size=2, max_size=10)
        async with self.pool.acquire() as connection:
            with contextlib.suppress(asyncpg.UniqueViolationError):  # two workers create it at once
                await connection.execute(SCHEMA)
        self.redis = aioredis.Redis.from_url(REDIS)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self.pubsub.subscribe("peer:none")  # get_message needs a subscription
        self.reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.pubsub is not None:
            await self.pubsub.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pool is not None:
            await self.pool.close()

    async def _read(self) -> None:
        assert self.pubsub is not None
        while True:
            message = await self.pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            user_id = int(message["channel"].rsplit(b":", 1)[1])
            text = message["data"].decode()
            for ws in tuple(self.sockets.get(user_id, ())):
                with contextlib.suppress(Exception):
                    await ws.send_text(text)


peer = Peer()


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await peer.start()
    try:
        yield
    finally:
        await peer.stop()


app = FastAPI(lifespan=lifespan)


class Signup(BaseModel):
    email: str
    password: str


@app.post("/api/auth/signup", status_code=201)
async def signup(body: Signup) -> dict[str, object]:
    assert peer.pool is not None
    user_id = await peer.pool.fetchval("INSERT INTO peer_users (email) VALUES ($1) RETURNING id", body.email)
    return {"id": str(user_id), "token": f"peer.{user_id}"}


@app.get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@app.websocket("/api/ws")
async def chat(ws: WebSocket) -> None:
    assert peer.pool is not None and peer.redis is not None and peer.pubsub is not None
    user_id = int(ws.headers.get("authorization", "Bearer peer.0").rsplit(".", 1)[1])
    await ws.accept()
    sockets = peer.sockets.setdefault(user_id, set())
    if not sockets:
        await peer.pubsub.subscribe(f"peer:user:{user_id}")
    sockets.add(ws)
    await ws.send_text(orjson.dumps({"type": "hello", "user_id": user_id, "last_seq": 0}).decode())
    try:
        while True:
            frame = orjson.loads(await ws.receive_text())
            message_id = await peer.pool.fetchval(INSERT, user_id, frame["client_msg_id"], frame["message"])
            ack = {
                "type": "ack",
                "client_msg_id": frame["client_msg_id"],
                "conversation_id": 0,
                "message_id": message_id,
                "turn_id": frame["client_msg_id"],
                "seq": message_id,
            }
            await ws.send_text(orjson.dumps(ack).decode())
            event = {
                "type": "message",
                "message": {
                    "id": message_id,
                    "role": "user",
                    "turn_id": frame["client_msg_id"],
                    "content": frame["message"],
                },
            }
            await peer.redis.publish(f"peer:user:{user_id}", orjson.dumps(event))
    except WebSocketDisconnect:
        pass
    finally:
        sockets.discard(ws)
        if not sockets:
            del peer.sockets[user_id]
            with contextlib.suppress(Exception):
                await peer.pubsub.unsubscribe(f"peer:user:{user_id}")

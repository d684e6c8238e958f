"""A WebSocket test driver over a real connection: connect, send frames, receive by type, assert silence."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.timing import QUIET, TIMEOUT


class WSClient:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.log: list[dict[str, Any]] = []
        """Every frame received, in order."""
        self.hello: dict[str, Any] = {}

    @classmethod
    async def open(
        cls,
        url: str,
        token: str | None = None,
        *,
        via: str = "header",
        origin: str | None = None,
        after_seq: int | None = None,
        expect_hello: bool = True,
        headers: dict[str, str] | None = None,
    ) -> WSClient:
        """Connect and authenticate `via` the Authorization header or a first `auth` frame."""
        headers = dict(headers or {})
        if token and via == "header":
            headers["Authorization"] = f"Bearer {token}"
        connection = await connect(url, additional_headers=headers, origin=origin, open_timeout=TIMEOUT)  # type: ignore[arg-type]
        client = cls(connection)
        if token and via == "frame":
            await client.send({"type": "auth", "token": token, "after_seq": after_seq})
        if expect_hello:
            client.hello = await client.receive("hello")
        return client

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        await self.connection.send(frame if isinstance(frame, (str, bytes)) else orjson.dumps(frame).decode())

    async def chat(self, message: str, conversation_id: int | None = None, client_msg_id: str | None = None) -> str:
        client_msg_id = client_msg_id or secrets.token_hex(8)
        await self.send(
            {"type": "chat", "conversation_id": conversation_id, "message": message, "client_msg_id": client_msg_id}
        )
        return client_msg_id

    async def next(self, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        frame: dict[str, Any] = orjson.loads(raw)
        self.log.append(frame)
        return frame

    async def next_or_close(self, *, timeout: float = TIMEOUT) -> dict[str, Any] | int | None:
        """The next frame, or the close code when the server closes first."""
        try:
            return await self.next(timeout=timeout)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def receive(self, type: str, *, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next frame of `type` (whose fields equal `match`), skipping others (still in `log`)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout=timeout)
                if frame["type"] == type and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def seen(self, type: str, *, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """A frame of `type` received at any time (already logged, maybe skipped over), or the next one."""
        for frame in self.log:
            if frame["type"] == type and all(frame.get(k) == v for k, v in match.items()):
                return frame
        return await self.receive(type, timeout=timeout, **match)

    async def until(self, type: str, *, timeout: float = TIMEOUT, **match: Any) -> list[dict[str, Any]]:
        """Every frame up to and including the next one of `type`."""
        start = len(self.log)
        await self.receive(type, timeout=timeout, **match)
        return self.log[start:]

    async def expect_nothing(self, type: str | None = None, *, timeout: float = QUIET) -> None:
        """Assert that no frame (of `type`) arrives within `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    frame = await self.next(timeout=timeout)
                    assert type is not None and frame["type"] != type, f"unexpected frame {frame}"
        except TimeoutError:
            return

    async def closed(self, *, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """Wait for the server to close; returns (code, reason). Frames before the close are logged."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.next(timeout=timeout)
        except ConnectionClosed as exc:
            received = exc.rcvd
            return (received.code, received.reason) if received else (None, "")

    async def close(self) -> None:
        await self.connection.close()

    async def __aenter__(self) -> WSClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in frames if "seq" in frame and frame["type"] != "ack"]

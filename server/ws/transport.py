"""Writing frames to one socket: several at once in ONE transport write, and aborting a peer that stopped reading.

ASGI offers one `websocket.send` per frame, and each costs a trip through Starlette and
uvicorn plus a write syscall. A socket usually has a few frames ready at once (a turn's reply,
`message` and `turn.end`), so under uvicorn's websockets-sansio protocol (its default) the frames
are framed by the same `websockets` connection object uvicorn uses and written in one call,
honouring uvicorn's flow control the way its own `send` does. Any other server, or another
protocol implementation, gets one ASGI send per frame: same bytes on the wire, more calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from server.errors import CloseCode

_SANSIO = "WebSocketsSansIOProtocol"
_NEEDS = ("conn", "transport", "writable", "close_sent", "disconnected")


class FrameWriter:
    __slots__ = ("_protocol", "_ws")

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        protocol = getattr(getattr(websocket, "_send", None), "__self__", None)
        supported = type(protocol).__name__ == _SANSIO and all(hasattr(protocol, name) for name in _NEEDS)
        self._protocol: Any = protocol if supported else None

    @property
    def batches(self) -> bool:
        """Whether several frames go out in one write here."""
        return self._protocol is not None

    async def send(self, texts: Sequence[str]) -> None:
        protocol = self._protocol
        if protocol is None or len(texts) == 1:
            for text in texts:
                await self._ws.send_text(text)
            return
        await protocol.writable.wait()  # uvicorn's flow control: the transport's buffer is full
        if protocol.disconnected or protocol.close_sent or protocol.transport.is_closing():
            raise WebSocketDisconnect(CloseCode.GOING_AWAY)
        conn = protocol.conn
        for text in texts:
            conn.send_text(text.encode())
        protocol.transport.write(b"".join(conn.data_to_send()))

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (the peer would never read it).

        ASGI has no message for this; under uvicorn the send callable belongs to the connection's
        protocol, which owns the transport. Elsewhere this is a no-op and the server's own
        timeouts apply.
        """
        protocol = getattr(getattr(self._ws, "_send", None), "__self__", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None and hasattr(transport, "abort"):
            transport.abort()

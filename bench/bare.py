"""A bare ASGI WebSocket server on the same uvicorn, uvloop and websockets: the floor under our per-socket memory.

It accepts every socket, sends a `hello` and waits for the peer to close; no auth, no state.
`python -m bench.idle --bare` measures it exactly like the real server.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

HELLO = b'{"type":"hello"}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "http":  # the readiness probe
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": HELLO.decode()})
    while (await receive())["type"] != "websocket.disconnect":
        pass

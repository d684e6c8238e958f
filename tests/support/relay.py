"""A TCP fault proxy on loopback in front of a real service: pass (with added latency), drop, hang, reset, half-open.

Placed between a client and the server, or between the server and Redis or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from typing import Literal

Mode = Literal["pass", "drop", "hang", "reset", "half_open"]


class Relay:
    """Forwards connections to `target` while `mode` is "pass", each chunk `delay` seconds late.

    "drop" closes every connection at once (a service that is down); "hang" accepts and never
    answers (a network that black-holes packets: only a timeout notices). Switching to either cuts
    the connections already open, as a real outage would. "reset" aborts every connection with a
    TCP RST, open ones and new ones (a middlebox that forgot them). "half_open" stops forwarding in
    both directions without closing anything (a peer whose host froze or whose route vanished:
    both ends believe the connection is up); new connections are accepted and held the same way.
    Back to "pass", held connections flow again.
    """

    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.mode: Mode = "pass"
        self.delay = delay
        """Seconds each chunk is held before it is forwarded, both ways (added latency)."""
        self.connections = 0
        """Connections accepted so far."""
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._flowing.set()
        self._cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def set(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "half_open":
            self._flowing.clear()
            return
        self._flowing.set()
        if mode == "reset":
            self._cut(reset=True)
        elif mode != "pass":
            self._cut()

    def _cut(self, *, reset: bool = False) -> None:
        for writer in list(self._writers):
            if reset:
                _abort(writer)
            else:
                writer.close()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            if self.mode == "drop":
                return
            if self.mode == "reset":
                _abort(writer)
                return
            if self.mode == "hang":
                await reader.read()  # until the client gives up; nothing is ever answered
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            self._writers.add(upstream_writer)
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()  # half-open: nothing read, nothing written, nothing closed
                data = await reader.read(65536)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, not a FIN: linger on, timeout 0."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()

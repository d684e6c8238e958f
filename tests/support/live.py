"""A real uvicorn server on a free loopback port, in this event loop or in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from server.runtime import Runtime
from tests.support.timing import TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _OnLoopback:
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"


@dataclass
class LiveServer(_OnLoopback):
    app: FastAPI
    port: int

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime


def _config(app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        ws="websockets-sansio",
        lifespan="on",
        server_header=False,  # as `python -m server` runs
        access_log=False,
        proxy_headers=False,  # the app's TRUSTED_PROXIES decide
    )


@contextlib.asynccontextmanager
async def serve_in_process(app: FastAPI) -> AsyncIterator[LiveServer]:
    """Run `app` under uvicorn in this loop (lifespan included) until the block ends."""
    server = uvicorn.Server(_config(app))
    task = asyncio.create_task(server._serve())  # _serve: no signal capture, pytest keeps Ctrl-C
    try:
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start-up")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield LiveServer(app=app, port=port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)


@contextlib.contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[LiveServer]:
    """Run `app` under uvicorn in a thread with its own event loop: for synchronous clients (schemathesis,
    a blocking WebSocket client) that would otherwise block the loop serving them."""
    server = uvicorn.Server(_config(app))
    thread = threading.Thread(target=lambda: asyncio.run(server._serve()), name="test-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)  # polling another thread's flag: there is no event to await from here
        yield LiveServer(app=app, port=server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)


@dataclass
class ServerProcess(_OnLoopback):
    """`python -m server` in a subprocess: what fan-out across workers and restarts need."""

    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    async def start(self) -> None:
        env = {**os.environ, **self.env}
        log = open(self.log_path or os.devnull, "ab")  # noqa: SIM115  the child owns it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", str(self.port)],
            cwd=self.env.get("SERVER_CWD", str(ROOT)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: `stop` can sweep its worker processes too
        )
        log.close()

        async def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; log: {self.log_path}")
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(f"{self.base_url}/readyz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout=TIMEOUT * 3, step=0.1)

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = await asyncio.to_thread(self.process.wait, TIMEOUT * 3)
        # A supervisor that was SIGKILLed (here or by a test) leaves its `--workers` children behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        return code

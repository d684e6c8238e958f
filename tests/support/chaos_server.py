"""llmock, a third-party OpenAI-compatible chaos server, in a subprocess on a free loopback port.

llmock breaks streams (cut, dropped, corrupt, stalled) and answers with 429/503 at the rates it is
given, records every attempt, and then judges the client (`GET /_llmock/verdict`): did it accept
a cut stream, skip a corrupt chunk, sit through a stall, retry without backoff or before
Retry-After, give up without a retry? Its own process, not a thread of the test's: its uvicorn
and logging setup stay out of the test process, and it has a core of its own on a small machine.

`python -m tests.support.chaos_server '<Chaos as JSON>'` prints its port and serves until its
standard input closes (the test let go of it, or died) or MAX_LIFETIME passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
MAX_LIFETIME = 600.0
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Chaos:
    """What llmock breaks, and how often: each rate is a probability per request."""

    error_rates: dict[int, float] = field(default_factory=dict)
    """HTTP errors instead of an answer; llmock sends `Retry-After: 1` with a 429 or 503."""
    stream_faults: dict[str, float] = field(default_factory=dict)
    """truncate (a clean end without finish reason or [DONE]), disconnect, malformed, stall."""
    stall_seconds: float = 5.0
    chunk_delay_ms: int = 0
    """Paces every stream, as a model generating tokens does."""
    max_after_chunks: int = 6
    """A stream fault hits a chunk drawn from 1 to this (chunk 0 is the role chunk, before any text)."""
    response_style: str = "varied"


@dataclass(frozen=True)
class ChaosServer:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, for LLM_BASE_URL."""
        return f"{self.url}/v1"

    async def reset(self) -> None:
        """Forget every request seen (the rates stay)."""
        async with httpx.AsyncClient(base_url=self.url) as http:
            (await http.post("/_llmock/reset")).raise_for_status()

    async def verdict(self) -> dict[str, Any]:
        """llmock's judgement of every attempt since the last reset, and its report as text."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            verdict = (await http.get("/_llmock/verdict")).raise_for_status().json()
            report = (await http.get("/_llmock/verdict", params={"format": "text"})).raise_for_status().text
            requests = (await http.get("/_llmock/requests")).raise_for_status().json()["requests"]
        result: dict[str, Any] = {**verdict, "report": report, "requests": requests}
        return result


@contextlib.asynccontextmanager
async def chaos_server(chaos: Chaos) -> AsyncIterator[ChaosServer]:
    config = json.dumps(dataclasses.asdict(chaos))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.chaos_server",
        config,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT)
        if not line.strip().isdigit():
            raise RuntimeError(f"llmock did not start (exit code {await process.wait()})")
        yield ChaosServer(port=int(line))
    finally:
        process.stdin.close()  # the child's cue to stop
        try:
            await asyncio.wait_for(process.wait(), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- the child -------------------------------------------------------------------------------


def main(config: str) -> None:
    import uvicorn
    from llmock.chaos import ChaosSettings, StreamChaos
    from llmock.main import create_app
    from llmock.simulation import MockResponseSettings

    chaos = Chaos(**json.loads(config))
    app = create_app(
        chaos=ChaosSettings(error_rates={int(status): rate for status, rate in chaos.error_rates.items()}),
        responses=MockResponseSettings(response_style=chaos.response_style),
        stream_chaos=StreamChaos(
            fault_rates=tuple(chaos.stream_faults.items()),
            stall_seconds=chaos.stall_seconds,
            chunk_delay_ms=chaos.chunk_delay_ms,
            max_after_chunks=chaos.max_after_chunks,
        ),
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # before the port is announced: connections wait in the backlog until uvicorn accepts
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, access_log=False)
    )

    def stop_when_released() -> None:
        sys.stdin.read()  # returns when the parent closes the pipe, or exits
        server.should_exit = True

    threading.Thread(target=stop_when_released, daemon=True).start()
    deadline = threading.Timer(MAX_LIFETIME, lambda: setattr(server, "should_exit", True))
    deadline.daemon = True
    deadline.start()
    sys.stdout.write(f"{sock.getsockname()[1]}\n")  # the parent's cue
    sys.stdout.flush()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])

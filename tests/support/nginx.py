"""nginx on a free loopback port running the shipped `deploy/nginx.conf`, as a child of the test.

The shipped site file is rendered with the test's ports in its `listen` and upstream `server` lines
(nothing else changes) and included in a generated main config that keeps the pid file, the logs
and the temp paths in a directory of the test's own. The access log records which backend served
each request (`$upstream_addr`): how a test sees where the balancer sent a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import services
from tests.support.live import ROOT, free_port
from tests.support.timing import TIMEOUT, wait_until

BINARY = os.environ.get("TEST_NGINX", "/usr/sbin/nginx")
SITE = ROOT / "deploy" / "nginx.conf"

MAIN = """\
worker_processes 1;
pid nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format upstreams '$remote_addr "$request_uri" $status $upstream_addr';
    access_log access.log upstreams;
    client_body_temp_path temp/body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    include {site};
}}
"""

_LISTEN = re.compile(r"^(\s*)listen\s+[^;]+;", re.MULTILINE)
_BACKEND = re.compile(r"^(\s*)server\s+[^\s;{]+:\d+(\s[^;]*)?;\n", re.MULTILINE)


def render_site(text: str, *, port: int, backends: Sequence[int]) -> str:
    """`text` (the shipped site file) listening on 127.0.0.1:`port`, balancing over `backends` on loopback.

    Each backend line keeps the shipped line's parameters (max_fails, fail_timeout).
    """
    if len(_LISTEN.findall(text)) != 1:
        raise ValueError("the site file should have exactly one `listen` line")
    shipped = list(_BACKEND.finditer(text))
    if not shipped:
        raise ValueError("the site file's upstream has no `server host:port` lines")
    indent, parameters = shipped[0].group(1), shipped[0].group(2) or ""
    lines = "".join(f"{indent}server 127.0.0.1:{backend}{parameters};\n" for backend in backends)
    text = text[: shipped[0].start()] + lines + text[shipped[-1].end() :]
    if len(_BACKEND.findall(text)) != len(backends):
        raise ValueError("the site file's `server host:port` lines should be next to each other")
    return _LISTEN.sub(lambda match: f"{match.group(1)}listen 127.0.0.1:{port};", text)


@dataclass
class Nginx:
    port: int
    directory: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/ws"

    def upstreams(self, path: str) -> list[str]:
        """The backend(s) that served each finished request for `path`, in order ("a:1, b:2" when the
        first refused). A WebSocket is logged when it closes."""
        log = self.directory / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        served = []
        for line in lines:
            _, uri, _, upstream = line.split(" ", 3)
            if uri.strip('"').split("?")[0] == path:
                served.append(upstream)
        return served


@contextlib.asynccontextmanager
async def serve(backends: Sequence[int]) -> AsyncIterator[Nginx]:
    """nginx in front of `python -m server` on `backends` (loopback ports) until the block ends."""
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        services.unavailable("nginx", f"no executable at {BINARY} (install Debian's nginx or set TEST_NGINX)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="todochat-nginx-"))
    # Under root, nginx's workers run as nobody: they must reach the temp paths inside.
    directory.chmod(0o755)
    try:
        (directory / "temp").mkdir()
        (directory / "todochat.conf").write_text(render_site(SITE.read_text(), port=port, backends=backends))
        (directory / "nginx.conf").write_text(MAIN.format(site=directory / "todochat.conf"))
        command = [BINARY, "-p", f"{directory}/", "-c", "nginx.conf", "-e", "stderr", "-g", "daemon off;"]
        with (directory / "error.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        nginx = Nginx(port=port, directory=directory)
        try:
            await wait_until(lambda: _proxies(nginx, process), timeout=TIMEOUT, step=0.05)
            yield nginx
        finally:
            process.send_signal(signal.SIGTERM)  # fast shutdown: open sockets are cut, not waited for
            try:
                await asyncio.to_thread(process.wait, TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, TIMEOUT)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _proxies(nginx: Nginx, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        log = (nginx.directory / "error.log").read_text()[-2000:]
        raise RuntimeError(f"nginx exited with {process.returncode}: {log}")
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            return (await client.get(f"{nginx.base_url}/healthz")).status_code == 200
    except httpx.TransportError:
        return False

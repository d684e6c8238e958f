"""`python -m server`: run the app under uvicorn (host, port and workers from options or settings)."""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

import uvicorn

from server.logs import uvicorn_log_config
from server.settings import Settings


def main(argv: list[str] | None = None) -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m server", description="Run the Todo chatbot backend.")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.workers)
    args = parser.parse_args(argv)
    if args.workers > 1 and settings.redis_url is None:
        # The in-process broker cannot reach the other workers: their sockets would miss events.
        sys.exit("More than one worker needs REDIS_URL (the in-process broker serves one worker).")
    _serve_metrics(settings, port=args.port)
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
        # The same formatter as the app's, here in the supervisor and in every worker (uvicorn applies it).
        log_config=uvicorn_log_config(settings.log_level, settings.resolved_log_format),
        ws_max_size=settings.ws_max_message_bytes,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=settings.ws_compression,
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
        # The app applies X-Forwarded-For from TRUSTED_PROXIES only; uvicorn's copy would trust 127.0.0.1.
        proxy_headers=False,
        server_header=False,  # no version banner for scanners
        # uvicorn's access log prints the query string; the app logs each request without it.
        access_log=False,
    )


METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The Prometheus client's multiprocess directory (its own variable name)."""


def prepare_metrics_dir(port: int) -> str:
    """The metrics directory for a server on `port`, emptied: PROMETHEUS_MULTIPROC_DIR, or one of our own.

    Without the variable: `<tmp>/todochat-metrics-<uid>-<port>`, private to this user (one port, one
    server). Either way its metric files are deleted first: a previous run's values would be added in.
    """
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.gettempdir()) / f"todochat-metrics-{os.getuid()}-{port}"
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        info = path.lstat()
        # A predictable name in a shared directory: someone else may have made it first.
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise PermissionError(f"{path} is not a private directory of this user; set {METRICS_DIR_ENV}")
    for file in path.glob("*.db"):
        file.unlink()
    return str(path)


def _serve_metrics(settings: Settings, *, port: int) -> None:
    """Metrics of every worker from one place: the multiprocess directory, and METRICS_PORT if set.

    This runs before anything imports `prometheus_client` (each worker's app does, and the client
    picks its storage at import), so every worker, inheriting the environment, writes its values
    into the directory.
    """
    try:
        os.environ[METRICS_DIR_ENV] = prepare_metrics_dir(port)
    except OSError as exc:
        sys.exit(f"Cannot prepare the metrics directory: {exc}")
    if settings.metrics_port is not None:
        from prometheus_client import start_http_server

        from server import scrape

        try:
            # A daemon thread of the supervising process: it outlives the workers it reports on.
            start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=scrape.registry())
        except OSError as exc:
            sys.exit(f"Cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: {exc}")


if __name__ == "__main__":
    main()

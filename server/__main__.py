"""`python -m server`: run the app under uvicorn (host, port and workers from options or settings)."""

from __future__ import annotations

import argparse
import sys

import uvicorn

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
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level,
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


if __name__ == "__main__":
    main()

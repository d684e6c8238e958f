"""Log set-up for the `server` package: one line per record, request id included when there is one."""

from __future__ import annotations

import logging

from server.api.errors import request_id_var


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _NoQueryInSocketLines(logging.Filter):
    """uvicorn logs each WebSocket handshake as `"WebSocket /path?query" [accepted]`: drop the query.

    A query string may carry a token (the socket refuses those, but only after the line is logged).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(record.msg, str) and '"WebSocket %s"' in record.msg and isinstance(args, tuple) and len(args) > 1:
            path = args[1]
            if isinstance(path, str):
                record.args = (args[0], path.partition("?")[0], *args[2:])
        return True


def configure_logging(level: str) -> None:
    """Give the `server` logger a handler unless the host application already did; keep queries out of uvicorn's."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoQueryInSocketLines) for f in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_NoQueryInSocketLines())
    logger = logging.getLogger("server")
    logger.setLevel(level.upper())
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False

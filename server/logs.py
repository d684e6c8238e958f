"""Logging: one structlog formatter for the app and uvicorn, the ids of what a line concerns, bounded outage logs.

Every record, the app's `logging` calls and uvicorn's own, goes through one handler on the root
logger whose `structlog.stdlib.ProcessorFormatter` renders it as one JSON object per line
(`LOG_FORMAT=json`, production's default) or as a readable console line. The ids a line concerns
come from `structlog.contextvars`, bound at the boundaries: `request_id` (and `user_id` once the
token is checked) per HTTP request, `connection_id` and `user_id` per socket, `turn_id`,
`user_id` and `conversation_id` per turn, `worker_id` in the lease loop. Context variables follow
into the tasks started inside, so nothing is passed around by hand.

What is never logged: tokens, passwords, message text or other user input. Tracebacks are
rendered without local variables (which would hold them). Database errors can quote the values
of a statement even when its parameters are hidden: PostgreSQL's `DETAIL` ("Key (email)=(...)
already exists", "Failing row contains (...)") and the value in "invalid input syntax for type
integer: "..."", and asyncpg's "invalid input for query argument $1: '...'". Those are replaced
in every message and traceback (`hide_sql_values`), whichever driver or layer raised them.

An outage makes the same failure happen many times a second (every socket, every heartbeat):
`throttled()` logs the first at once, then one summary with the count every SUMMARY_EVERY
seconds while it lasts, and one line with the totals when it is over.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]

#: uvicorn logs each socket as three lines (accepted, open, closed) with nothing to tell them apart;
#: the app writes one line per socket with its ids instead (`server.access`). The first stays.
_SOCKET_CHATTER = frozenset({"connection open", "connection closed"})


def _add_pid(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")
    event_dict["pid"] = record.process if isinstance(record, logging.LogRecord) else None
    return event_dict


def _drop_color_message(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message, as an `extra`
    return event_dict


_FIRST = ("timestamp", "level", "logger", "message")

HIDDEN = "(value hidden)"
#: Where database errors quote values (PostgreSQL's messages and DETAIL, asyncpg's argument errors).
_SQL_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(\s*DETAIL:\s+).*$", re.MULTILINE), rf"\g<1>{HIDDEN}"),
    (re.compile(r"(invalid input for query argument \$\d+): .*?( \([^()\n]*\))?$", re.MULTILINE), rf"\1: {HIDDEN}\2"),
    (re.compile(r"(invalid input (?:syntax|value) for [^:\n]+): .*?(['\")]*)$", re.MULTILINE), rf"\1: {HIDDEN}\2"),
    (re.compile(r'value "[^"\n]*" is out of range'), f"value {HIDDEN} is out of range"),
    (re.compile(r'(field value out of range): "[^"\n]*"'), rf"\1: {HIDDEN}"),
)


#: Words every one of those patterns contains: most lines hold none, and skip the regexes.
_SQL_VALUE_HINTS = ("DETAIL", "invalid input", "out of range")


def hide_sql_values(text: str) -> str:
    """`text` without the values a database error may quote (the statement's parameters, a row)."""
    if not any(hint in text for hint in _SQL_VALUE_HINTS):
        return text
    for pattern, replacement in _SQL_VALUES:
        text = pattern.sub(replacement, text)
    return text


def _hide_sql_values(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    for key in ("event", "exception"):
        value = event_dict.get(key)
        if isinstance(value, str):
            event_dict[key] = hide_sql_values(value)
    return event_dict


def _plain_traceback_without_values(sio: TextIO, exc_info: Any) -> None:
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(hide_sql_values(buffer.getvalue()))


def _leading_keys(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """When, how bad, where and what first; the ids and fields after (easier to read, same to parse)."""
    first = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}
    return {**first, **event_dict}


def _json(value: Any, **_kwargs: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def make_formatter(fmt: LogFormat = "json") -> ProcessorFormatter:
    """The one formatter; `uvicorn_log_config` names it by this function for `logging.config`."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),  # fields given as `extra=` (the access line's status and duration)
        _drop_color_message,
        _add_pid,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[Processor]
    if fmt == "json":
        final = [
            ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # a plain traceback string: no local variables
            _hide_sql_values,
            structlog.processors.EventRenamer("message"),
            _leading_keys,
            structlog.processors.JSONRenderer(serializer=_json),
        ]
    else:
        final = [
            ProcessorFormatter.remove_processors_meta,
            _hide_sql_values,
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(),
                # Its default (rich) prints every frame's local variables: tokens, passwords, messages.
                exception_formatter=_plain_traceback_without_values,
            ),
        ]
    return ProcessorFormatter(foreign_pre_chain=shared, processors=final)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Ours: found again (and re-formatted) when the app is created twice in a process."""


class _NoQueryInSocketLines(logging.Filter):
    """uvicorn logs each WebSocket handshake as `"WebSocket /path?query" [accepted]`: drop the query.

    A query string may carry a token (the socket refuses those, but only after the line is logged).
    The content-free "connection open" / "connection closed" lines are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in _SOCKET_CHATTER:
            return False
        args = record.args
        if isinstance(record.msg, str) and '"WebSocket %s"' in record.msg and isinstance(args, tuple) and len(args) > 1:
            path = args[1]
            if isinstance(path, str):
                record.args = (args[0], path.partition("?")[0], *args[2:])
        return True


def uvicorn_log_config(level: str, fmt: LogFormat) -> dict[str, Any]:
    """`logging.config` for uvicorn (`python -m server`): the same handler in the supervisor and every worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": "server.logs.make_formatter", "fmt": fmt}},
        "handlers": {
            "default": {"()": "server.logs._Handler", "formatter": "structured", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "uvicorn": {"level": level.upper(), "handlers": [], "propagate": True},
            "server": {"level": level.upper()},
        },
    }


def configure_logging(level: str, fmt: LogFormat = "console") -> None:
    """Route the app's and uvicorn's records through our handler, unless the host application has its own.

    Under `python -m server` uvicorn already installed it (`uvicorn_log_config`); under another
    launcher (`uvicorn server.app:create_app --factory`) this installs it and takes uvicorn's
    loggers over. uvicorn's access log is switched off either way: the app logs every request
    itself, without the query string (`server/api/errors.py`).
    """
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoQueryInSocketLines) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_NoQueryInSocketLines())
    logging.getLogger("server").setLevel(level.upper())
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _Handler)]
    if root.handlers and not ours:
        return  # the host application (or a test runner) decides where records go
    if ours:
        ours[0].setFormatter(make_formatter(fmt))
    else:
        handler = _Handler(sys.stderr)
        handler.setFormatter(make_formatter(fmt))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)  # libraries' info lines stay out; ours and uvicorn's have their level
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.handlers.clear()
    uvicorn_logger.propagate = True
    uvicorn_logger.setLevel(level.upper())
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False  # no handler anywhere: uvicorn skips its access lines altogether


# --- bounded logging through an outage -----------------------------------------------------

SUMMARY_EVERY = 30.0
"""Seconds between two summaries of a failure that goes on."""


class Throttled:
    """One kind of failure, however often it happens: at most one line per `every` seconds, and one on recovery.

    A failure is written at once when no line was written for `every` seconds (the first of an
    outage always is); otherwise it is counted, and a summary with the count is written when
    `every` seconds have passed since the last line (a timer: it does not wait for the next
    failure). `recovered()` writes one line with the outage's length and count, and only after a
    failure. Sites with no way to notice recovery just get the summaries.
    """

    def __init__(
        self, logger: logging.Logger, *, every: float = SUMMARY_EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self.every = every
        self._clock = clock
        self.failing_since: float | None = None
        """When this outage began (`clock` time); None while all is well."""
        self.failures = 0
        """Failures since the outage began."""
        self._unreported = 0
        self._last_line_at: float | None = None
        self._last: tuple[str, tuple[Any, ...]] = ("", ())
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def failure(self, message: str, *args: Any) -> None:
        """Count one failure; `message % args` says what failed (the latest is the one summarised)."""
        now = self._clock()
        if self.failing_since is None:
            self.failing_since = now
        self.failures += 1
        self._unreported += 1
        self._last = (message, args)
        if self._last_line_at is None or now - self._last_line_at >= self.every:
            self._report(now)
        else:
            self._schedule(self._last_line_at + self.every - now)

    def recovered(self, message: str, *args: Any) -> None:
        """The failing thing works again: one line with the totals (nothing if nothing failed)."""
        if self.failing_since is None:
            return
        self._cancel_timer()
        lasted = self._clock() - self.failing_since
        self._logger.info(
            message + " (after %.1fs and %d failure(s))",
            *args,
            lasted,
            self.failures,
            extra={"failures": self.failures, "outage_seconds": round(lasted, 3)},
        )
        self.failing_since, self.failures, self._unreported, self._last_line_at = None, 0, 0, None

    def _report(self, now: float) -> None:
        self._cancel_timer()
        message, args = self._last
        if self.failures == 1:
            self._logger.warning(message, *args, extra={"failures": 1})
        else:
            since = now - (self.failing_since or now)
            self._logger.warning(
                message + " (%d like it since the last report; %d since the first, %.0fs ago)",
                *args,
                self._unreported,
                self.failures,
                since,
                extra={"failures": self.failures, "since_last_report": self._unreported},
            )
        self._unreported = 0
        self._last_line_at = now

    def _schedule(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a thread): the next failure or the recovery reports the count
        if self._timer is not None and self._timer_loop is loop and not loop.is_closed():
            return
        # An empty context: the summary concerns every failure counted, not the one that scheduled it.
        self._timer = loop.call_later(max(0.0, delay), self._on_timer, context=contextvars.Context())
        self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        if self._unreported and self.failing_since is not None:
            self._report(self._clock())

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_throttles: dict[str, Throttled] = {}


def throttled(logger: logging.Logger, key: str, *, every: float = SUMMARY_EVERY) -> Throttled:
    """The process's throttle for `key` (one kind of failure, wherever it happens), made on first use."""
    throttle = _throttles.get(key)
    if throttle is None:
        throttle = _throttles[key] = Throttled(logger, every=every)
    return throttle

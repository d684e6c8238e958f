"""Log lines: one JSON object per record with the bound ids and no locals; outage warnings bounded by `Throttled`."""

from __future__ import annotations

import asyncio
import logging
import sys

import orjson
import pytest
import structlog

from server.logs import LogFormat, Throttled, make_formatter, uvicorn_log_config
from tests.support.timing import wait_until


def record(message: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    rec = logging.getLogger("server.test").makeRecord("server.test", level, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def test_a_json_line_has_the_message_the_level_and_the_bound_ids() -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-1", user_id=7):
        line = make_formatter("json").format(record("GET %s %d", "/api/x", 200, status=200))
    entry = orjson.loads(line)
    assert list(entry)[:4] == ["timestamp", "level", "logger", "message"]
    assert entry["message"] == "GET /api/x 200" and entry["level"] == "info" and entry["logger"] == "server.test"
    assert entry["request_id"] == "req-1" and entry["user_id"] == 7 and entry["status"] == 200
    assert isinstance(entry["pid"], int) and entry["timestamp"].endswith("Z")


def test_ids_bound_elsewhere_do_not_leak_into_a_line() -> None:
    with structlog.contextvars.bound_contextvars(connection_id="c-1"):
        pass
    assert "connection_id" not in orjson.loads(make_formatter("json").format(record("after")))


def secret_holding_failure() -> None:
    password = "hunter2-" + "p" * 8  # noqa: F841  # a local the traceback must not show
    raise ValueError("boom")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_traceback_is_logged_without_local_variables(fmt: LogFormat) -> None:
    rec = record("failed", level=logging.ERROR)
    try:
        secret_holding_failure()
    except ValueError:
        rec.exc_info = sys.exc_info()
    text = make_formatter(fmt).format(rec)
    assert "ValueError: boom" in text and "secret_holding_failure" in text
    assert "hunter2" not in text


def test_uvicorn_colour_copies_are_dropped() -> None:
    entry = orjson.loads(make_formatter("json").format(record("Started", color_message="\x1b[36mStarted\x1b[0m")))
    assert "color_message" not in entry


def test_uvicorn_gets_the_same_formatter_in_every_process() -> None:
    config = uvicorn_log_config("info", "json")
    assert config["formatters"]["structured"] == {"()": "server.logs.make_formatter", "fmt": "json"}
    assert config["loggers"]["uvicorn"] == {"level": "INFO", "handlers": [], "propagate": True}
    assert config["root"]["handlers"] == ["default"]


# --- Throttled ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines:
    """The records of `server.outage` so far (pytest's capture list is renewed per test phase: read it late)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __len__(self) -> int:
        return len(self._caplog.records)

    def __getitem__(self, index: int) -> logging.LogRecord:
        return self._caplog.records[index]

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self._caplog.records]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="server.outage")
    return Lines(caplog)


async def test_an_outage_logs_the_first_failure_then_a_summary_then_the_recovery(
    lines: Lines,
) -> None:
    clock = Clock()
    throttle = Throttled(logging.getLogger("server.outage"), every=30, clock=clock)
    for n in range(400):  # ten seconds of failures on every socket
        clock.now += 0.025
        throttle.failure("Redis subscribe failed: %s", f"attempt {n}")
    assert lines.messages() == ["Redis subscribe failed: attempt 0"]
    clock.now += 25  # 35 s after the first line: the next failure is written, with the count
    throttle.failure("Redis subscribe failed: %s", "late")
    assert lines[-1].levelno == logging.WARNING
    assert lines[-1].getMessage() == (
        "Redis subscribe failed: late (400 like it since the last report; 401 since the first, 35s ago)"
    )
    clock.now += 5
    throttle.recovered("Redis is back")
    assert lines[-1].levelno == logging.INFO
    assert lines[-1].getMessage() == "Redis is back (after 40.0s and 401 failure(s))"
    assert len(lines) == 3
    throttle.recovered("Redis is back")  # nothing failed since: nothing to say
    throttle.failure("Redis subscribe failed: %s", "again")  # a new outage starts with its own first line
    assert len(lines) == 4 and lines[-1].getMessage() == "Redis subscribe failed: again"


async def test_a_summary_comes_without_waiting_for_another_failure(lines: Lines) -> None:
    throttle = Throttled(logging.getLogger("server.outage"), every=0.05)
    throttle.failure("Database unavailable: %s", "OSError")
    throttle.failure("Database unavailable: %s", "OSError")
    throttle.failure("Database unavailable: %s", "TimeoutError")
    assert len(lines) == 1
    await wait_until(lambda: len(lines) == 2)
    assert lines[1].getMessage().startswith("Database unavailable: TimeoutError (2 like it since the last report;")
    await asyncio.sleep(0.1)  # a quiet period: asserting that no further summary comes
    assert len(lines) == 2


async def test_a_summary_carries_none_of_the_ids_of_the_failure_that_scheduled_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("server.outage")
    caplog.set_level(logging.INFO, logger="server.outage")
    seen: list[dict[str, object]] = []

    class Capture(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(dict(structlog.contextvars.get_contextvars()))

    handler = Capture()
    logger.addHandler(handler)
    try:
        throttle = Throttled(logger, every=0.02)
        with structlog.contextvars.bound_contextvars(connection_id="first"):
            throttle.failure("lost")
        with structlog.contextvars.bound_contextvars(connection_id="second"):
            throttle.failure("lost")
        await wait_until(lambda: len(seen) == 2)
    finally:
        logger.removeHandler(handler)
    assert seen == [{"connection_id": "first"}, {}]

"""`python -m bench.metrics`: what the metrics and the turn's log line add to one chat turn, in CPU.

Runs, in a fresh process per mode (the Prometheus client picks its storage at import), exactly
the metric calls one turn makes on the server: the ack histogram, turns started and ended, the
turn histogram, and the fan-out lag of its four persisted events on one socket of another
worker; once with the client's in-memory values (one process) and once in multiprocess mode
(`PROMETHEUS_MULTIPROC_DIR`, what `python -m server` runs: every value an mmapped file). Then
the turn's log line: skipped (LOG_LEVEL=warning) and written as JSON (LOG_LEVEL=info, to
/dev/null). Nothing else runs: the figures are the calls' own cost, to set against the ~7 ms of
CPU a whole turn costs the deployment (bench/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import orjson

from bench import machine, results
from bench.stats import table

MODES = ("single process", "multiprocess (python -m server)")
FANOUT_EVENTS = 4
"""Persisted events of a turn (message, turn.start, the reply's message, turn.end)."""


def _per_call_us(call: Callable[[], object], count: int) -> dict[str, float]:
    for _ in range(min(2000, count)):  # warm: caches, the mmapped files' first pages
        call()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        call()
    return {
        "wall_us": round((time.perf_counter() - wall) / count * 1e6, 2),
        "cpu_us": round((time.process_time() - cpu) / count * 1e6, 2),
    }


def _child(count: int) -> dict[str, dict[str, float]]:
    """In this process, with whatever storage the environment selected."""
    from server import metrics  # after the environment chose the storage
    from server.logs import make_formatter

    published = time.time()

    def turn_metrics() -> None:
        begun = time.perf_counter()
        metrics.ACK_SECONDS.observe(time.perf_counter() - begun)
        metrics.TURNS_STARTED.inc()
        metrics.TURNS_ENDED_BY_OUTCOME["done"].inc()
        metrics.TURN_SECONDS.observe(time.monotonic() - begun)
        for _ in range(FANOUT_EVENTS):
            metrics.FANOUT_LAG.observe(time.time() - published)

    def nothing() -> None:
        return None

    logger = logging.getLogger("server.chat.turns")
    logger.propagate = False
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the process
    handler.setFormatter(make_formatter("json"))
    logger.addHandler(handler)

    def turn_line() -> None:
        logger.info("Turn ended %s %.0fms", "done", 412.3, extra={"outcome": "done", "duration_ms": 412.3})

    figures = {"a turn's metrics": _per_call_us(turn_metrics, count), "an empty call": _per_call_us(nothing, count)}
    logger.setLevel(logging.WARNING)
    figures["the turn's log line, LOG_LEVEL=warning"] = _per_call_us(turn_line, count)
    logger.setLevel(logging.INFO)
    figures["the turn's log line, LOG_LEVEL=info (JSON)"] = _per_call_us(turn_line, max(1, count // 10))
    return figures


def _run_mode(mode: str, count: int) -> dict[str, dict[str, float]]:
    env = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if mode != MODES[0]:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(  # our own module, by the running interpreter
            [sys.executable, "-m", "bench.metrics", "--child", "--count", str(count)],
            env=env,
            check=True,
            capture_output=True,
        ).stdout
    figures: dict[str, dict[str, float]] = orjson.loads(out)
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000, help="calls per measurement (default %(default)s)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.stdout.write(orjson.dumps(_child(args.count)).decode())
        return
    described = {
        "cpu": machine.cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": machine.load_average(),
        "revision": machine.revision(),
    }
    print(f"{described['cores']} cores, {described['cpu']}; load average {described['load_average']}")
    by_mode = {mode: _run_mode(mode, args.count) for mode in MODES}
    rows = [[mode, name, f["wall_us"], f["cpu_us"]] for mode, figures in by_mode.items() for name, f in figures.items()]
    print(table(rows, header=("storage", "per turn", "wall us", "CPU us")))
    path = results.write("metrics", {"machine": described, "count": args.count, "per_turn": by_mode})
    print(f"wrote {results.relative(path)}")


if __name__ == "__main__":
    main()

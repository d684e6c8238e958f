"""Serving the metrics: one exposition over every worker of the machine, or over this process alone.

With several worker processes, the Prometheus client keeps each process's values in files of
its own under `PROMETHEUS_MULTIPROC_DIR` (its multiprocess mode), and an exposition reads them
all. The variable must be set before `prometheus_client` is first imported in the process (it
picks its value class then), so `python -m server` prepares the directory before it imports the
app (`server/__main__.py`); workers inherit it. Other launchers set it themselves (docs/operations.md).

Files of a worker that died stay behind. Its counters and histograms must (a total never goes
down); its live gauges must not (a SIGKILLed worker's sockets are not open): they are removed
as each exposition finds their process gone, and by a worker itself when it stops.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def multiprocess_dir() -> str | None:
    return os.environ.get(ENV) or None


def forget_dead_processes(path: str) -> None:
    """Remove the live gauges of processes that no longer run (a killed worker's sockets, turns, pools)."""
    for file in Path(path).glob("gauge_live*_*.db"):
        match = _LIVE_GAUGE_FILE.fullmatch(file.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            _mark_dead(pid, path)
        except PermissionError:
            continue  # it exists (another user's: not ours to judge)


def _mark_dead(pid: int, path: str) -> None:
    # Two workers answering scrapes at once may both find the same dead process.
    with contextlib.suppress(FileNotFoundError):
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]  # the client's untyped API


def forget_this_process() -> None:
    """At a worker's shutdown: its live gauges go at once, not at the next exposition."""
    path = multiprocess_dir()
    if path is not None:
        _mark_dead(os.getpid(), path)


class _LiveWorkers(Collector):
    """Every worker's metrics from the directory, after forgetting the live gauges of dead ones."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._files = multiprocess.MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        forget_dead_processes(self._path)
        metrics: Iterable[Metric] = self._files.collect()  # type: ignore[no-untyped-call]
        return metrics


def registry() -> CollectorRegistry:
    """What to expose: every worker's files in multiprocess mode, else this process's default registry."""
    path = multiprocess_dir()
    if path is None:
        return REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LiveWorkers(path))
    return registry


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format the scraper's `Accept` asks for (Prometheus text 0.0.4 by default), and its type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry()), content_type

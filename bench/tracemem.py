"""`python -m bench.tracemem --port P`: the real server under tracemalloc, dumping a snapshot on SIGUSR1.

Used by `python -m bench.idle --tracemalloc` to attribute the memory of idle sockets to the
lines that allocated it. Tracing slows the server and adds its own memory: its RSS figures are
not the ones to quote, only the attribution.
"""

from __future__ import annotations

import os
import re
import signal
import tracemalloc
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

FRAMES = 12
_SITE = re.compile(r"(?:site|dist)-packages/([A-Za-z0-9_]+)")
_STDLIB = re.compile(r"python3\.\d+/([A-Za-z0-9_]+)")


def _dump(signum: int, frame: FrameType | None) -> None:
    directory = Path(os.environ["BENCH_TRACEMALLOC_DIR"])
    count = len(list(directory.glob("*.snapshot")))
    partial = directory / f"{os.getpid()}-{count}.partial"
    tracemalloc.take_snapshot().dump(str(partial))
    partial.rename(partial.with_suffix(".snapshot"))  # the reader waits for complete files only


def _package(filename: str) -> str:
    if "/server/" in filename:
        return "server." + filename.rsplit("/server/", 1)[1].removesuffix(".py").replace("/", ".")
    for pattern in (_SITE, _STDLIB):
        if match := pattern.search(filename):
            return match.group(1)
    return filename.rsplit("/", 1)[-1]


def _site(frame: tracemalloc.Frame) -> str:
    return f"{_package(frame.filename)}:{frame.lineno}"


def attribute(before: Path, after: Path, *, sockets: int, top: int = 15) -> dict[str, Any]:
    """Bytes per socket that appeared between two snapshots: by package, by line, and by our code's line.

    A traceback runs from the oldest frame to the allocating one. "Our line" is the innermost
    frame in `server/`; callbacks of the event loop (protocol objects, transports) have none.
    """
    old, new = tracemalloc.Snapshot.load(str(before)), tracemalloc.Snapshot.load(str(after))
    by_package: Counter[str] = Counter()
    by_site: Counter[str] = Counter()
    by_server_line: Counter[str] = Counter()
    total = 0
    for stat in new.compare_to(old, "traceback"):
        if stat.size_diff <= 0:
            continue
        total += stat.size_diff
        frames = list(stat.traceback)
        by_package[_package(frames[-1].filename)] += stat.size_diff
        by_site[_site(frames[-1])] += stat.size_diff
        ours = next((frame for frame in reversed(frames) if "/server/" in frame.filename), None)
        by_server_line[_site(ours) if ours else "(event loop callback: no server frame)"] += stat.size_diff

    def per_socket(counter: Counter[str]) -> dict[str, int]:
        return {name: round(size / sockets) for name, size in counter.most_common(top)}

    return {
        "traced_bytes_per_socket": round(total / sockets),
        "by_allocating_package": per_socket(by_package),
        "by_allocating_line": per_socket(by_site),
        "by_innermost_server_line": per_socket(by_server_line),
    }


if __name__ == "__main__":
    import server.app  # noqa: F401  imported before tracing starts: imports under tracemalloc take minutes
    from server.__main__ import main as serve

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, _dump)
    serve()

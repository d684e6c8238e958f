"""Sampling one server process with py-spy during a run, and folding the stacks into where the time goes.

py-spy leaves out threads it sees idle, but it misreads the thread pools' workers blocked on
their queues as busy; those stacks are dropped here, so each share below is a share of the
event loop thread's CPU time. Time in C code (uvloop, asyncpg's protocol, hiredis, orjson)
shows up as self time of the Python frame that called it: `Runner.run` is the loop itself.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import RESULTS

RATE = 100
#: Leaf frames of pool threads waiting for work: idle, whatever py-spy thinks.
IDLE_LEAVES = ("Condition.wait", "_worker", "Queue.get", "WorkerThread.run")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*)\)$")
_SITE = re.compile(r"(?:site|dist)-packages/(?P<pkg>[A-Za-z0-9_]+)")
_STDLIB = re.compile(r"python3\.\d+/(?P<mod>[A-Za-z0-9_]+)")
_PROJECT = re.compile(r"/(?P<pkg>server)/(?P<sub>[A-Za-z0-9_]+)(?:\.py|/)")


@dataclass
class Spy:
    process: subprocess.Popen[bytes]
    output: Path
    seconds: float


def start(pid: int, *, seconds: float) -> Spy | None:
    """Start `py-spy record` on `pid` for `seconds`; None when py-spy is not installed."""
    binary = shutil.which("py-spy")
    if binary is None:
        print("py-spy not found (pip install py-spy): no profile")
        return None
    output = Path(tempfile.mkdtemp(prefix="todochat-bench-spy-")) / f"worker-{pid}.collapsed"
    command = [binary, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE)]
    command += ["--format", "raw", "--full-filenames", "--nolineno", "--output", str(output)]
    command += ["--nonblocking"]  # sampling without pausing the worker: it keeps its latency
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Spy(process=process, output=output, seconds=int(seconds))


async def finish(spy: Spy, *, keep_as: str | None = None) -> dict[str, Any]:
    try:
        await asyncio.to_thread(spy.process.wait, spy.seconds + 30)
    except subprocess.TimeoutExpired:
        spy.process.kill()
    if not spy.output.exists():
        stderr = spy.process.stderr.read().decode() if spy.process.stderr else ""
        return {"error": f"py-spy wrote nothing: {stderr.strip()[-300:]}"}
    summary = summarize(spy.output.read_text(), seconds=spy.seconds)
    kept = RESULTS / (keep_as or spy.output.name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(spy.output, kept)
    summary["collapsed_stacks"] = kept.name
    return summary


def category(filename: str) -> str:
    """The package a frame belongs to: `server.chat`, `sqlalchemy`, `asyncio`, ..."""
    if match := _SITE.search(filename):
        return match["pkg"]
    if match := _PROJECT.search(filename):
        return f"{match['pkg']}.{match['sub']}"
    if match := _STDLIB.search(filename):
        return match["mod"]
    return "other"


def _parse(line: str) -> tuple[list[tuple[str, str]], int] | None:
    stack, _, count = line.rpartition(" ")
    if not stack or not count.isdigit():
        return None
    frames = []
    for raw in stack.split(";"):
        match = _FRAME.match(raw)
        frames.append((match["func"], match["file"]) if match else (raw, ""))
    return frames, int(count)


def summarize(collapsed: str, *, seconds: float, top: int = 25) -> dict[str, Any]:
    """Self time by category and by function, and inclusive time of the project's own functions."""
    total = idle = 0
    self_category: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    inclusive_category: Counter[str] = Counter()
    inclusive_function: Counter[str] = Counter()
    for line in collapsed.splitlines():
        parsed = _parse(line)
        if parsed is None:
            continue
        frames, count = parsed
        func, filename = frames[-1]
        if frames[0][0] == "Thread._bootstrap" and func in IDLE_LEAVES:
            idle += count
            continue
        total += count
        leaf = category(filename)
        self_category[leaf] += count
        self_function[f"{leaf}:{func}"] += count
        for name in {category(f) for _, f in frames}:
            inclusive_category[name] += count
        for name in {f"{category(f)}:{fn}" for fn, f in frames}:
            inclusive_function[name] += count

    def shares(counter: Counter[str], limit: int | None = None) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in counter.most_common(limit)} if total else {}

    return {
        "samples": total,
        "idle_pool_thread_samples": idle,
        "sampled_cores": round(total / (RATE * seconds), 3) if seconds else None,
        "self_by_category_pct": shares(self_category),
        "inclusive_by_category_pct": shares(inclusive_category, top),
        "self_by_function_pct": shares(self_function, top),
        "inclusive_by_function_pct": shares(inclusive_function, 3 * top),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description="Summarize a py-spy raw profile.")
    parser.add_argument("collapsed", type=Path, help="a .collapsed file written by `bench.load --profile`")
    parser.add_argument("--seconds", type=float, default=0.0, help="the recording's length, for sampled cores")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    summary = summarize(args.collapsed.read_text(), seconds=args.seconds, top=args.top)
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"\n{key}")
            for name, share in value.items():
                print(f"  {share:5.1f}  {name}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()

"""One JSON file per run in bench/results/, with the machine it ran on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).resolve().parent / "results"


def write(workload: str, result: dict[str, Any], *, directory: Path = RESULTS) -> Path:
    """Write `result` as bench/results/<workload>-<UTC time>.json and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{workload}-{stamp}.json"
    document = {"workload": workload, "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return path


def relative(path: Path) -> str:
    """The path as the README shows it: relative to the repository."""
    try:
        return str(path.relative_to(RESULTS.parent.parent))
    except ValueError:
        return str(path)

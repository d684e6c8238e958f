"""Latency percentiles and the plain-text tables the workloads print."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

PERCENTILES = (50, 90, 99, 99.9)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported figure was observed)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """count, p50/p90/p99/p99.9, max and mean in milliseconds."""
    values = sorted(seconds)
    summary: dict[str, Any] = {"count": len(values)}
    for p in PERCENTILES:
        summary[f"p{p:g}"] = _ms(percentile(values, p))
    summary["max"] = _ms(values[-1]) if values else None
    summary["mean"] = _ms(sum(values) / len(values)) if values else None
    return summary


def _ms(value: float) -> float | None:
    return None if math.isnan(value) else round(value * 1000, 3)


def table(rows: Sequence[Sequence[Any]], *, header: Sequence[str]) -> str:
    """A text table: numbers right-aligned, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    left = [any(isinstance(row[i], str) for row in rows) or not rows for i in range(len(header))]
    lines = []
    for index, row in enumerate(cells):
        padded = [cell.ljust(widths[i]) if left[i] else cell.rjust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def latency_rows(latencies: dict[str, dict[str, Any]]) -> list[list[Any]]:
    return [[name, s["count"], s["p50"], s["p90"], s["p99"], s["p99.9"], s["max"]] for name, s in latencies.items()]


LATENCY_HEADER = ("latency (ms)", "n", "p50", "p90", "p99", "p99.9", "max")

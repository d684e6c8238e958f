"""`python -m bench.ramp`: step the offered rate up until fan-out p99 reaches 100 ms or anything is lost.

All steps run on one deployment, each with its own users and sockets, after the servers have
gone quiet. After the first failing step, `--refine` bisects between it and the last passing
one. The highest passing rate is the answer; every step's full report is kept.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvloop

from bench import deploy, machine, results, usage
from bench.load import LoadConfig, add_load_arguments, run_load
from bench.stats import table

STEPS = "25,50,75,100,150,200,300,500,750,1000,1500,2000,3000"


def row(report: dict[str, Any]) -> list[Any]:
    lat, counts = report["latency_ms"], report["counts"]
    return [
        _number(report["config"]["rate"]),
        report["throughput"]["acked_per_s"],
        lat["ack"]["p50"],
        lat["ack"]["p99"],
        lat["fanout"]["p50"],
        lat["fanout"]["p99"],
        lat["turn_end"]["p99"],
        counts["lost"],
        counts["unanswered"],
        sum(counts["errors"].values()),
        report["usage"]["cpu"]["servers"]["ms_per_turn"],
        report["usage"]["cpu"]["total"]["ms_per_turn"],
        "pass" if report["verdict"]["passed"] else "FAIL",
    ]


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


HEADER = (
    "rate",
    "acked/s",
    "ack p50",
    "ack p99",
    "fan p50",
    "fan p99",
    "end p99",
    "lost",
    "unans",
    "errors",
    "srv ms/turn",
    "all ms/turn",
    "",
)


async def ramp(
    deployed: deploy.Deployment, args: argparse.Namespace, rates: list[float], *, plain: bool = False
) -> tuple[float | None, float | None, list[dict[str, Any]]]:
    """Step the offered rate up on `deployed` until a step fails, then bisect: (best, first failing, reports)."""
    reports: list[dict[str, Any]] = []
    best: float | None = None

    async def step(rate: float) -> bool:
        await usage.wait_quiet(deployed.pids)  # the previous step's backlog must not leak into this one
        config = LoadConfig(
            rate=rate,
            duration=args.duration,
            users=args.users,
            per_user_rate=args.per_user_rate,
            drain=args.drain,
            plain=plain,
        )
        report = await run_load(deployed, config)
        reports.append(report)
        print(table([row(report)], header=HEADER).splitlines()[-1], "; ".join(report["verdict"]["problems"]))
        return bool(report["verdict"]["passed"])

    print(table([], header=HEADER))
    failed: float | None = None
    for rate in rates:
        if await step(rate):
            best = rate
        else:
            failed = rate
            break
    low = best or 0.0
    for _ in range(args.refine if failed is not None else 0):
        middle = round((low + failed) / 2) if failed is not None else low
        if middle in (low, failed):
            break
        if await step(middle):
            best = low = middle
        else:
            failed = middle
    return best, failed, reports


async def _main(args: argparse.Namespace) -> None:
    rates = [float(value) for value in args.steps.split(",")]
    async with deploy.deployment(args) as deployed:
        described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
        described["postgresql_settings"] = await usage.pg_settings(deployed.pg_dsn)
        print(machine.summary_line(described))
        best, failed, reports = await ramp(deployed, args, rates)
        described["load_average_after"] = machine.load_average()
    print(f"\nhighest passing rate: {best} turns/s" + (f" (first failing: {failed})" if failed else ""))
    print(table([row(report) for report in sorted(reports, key=lambda r: r["config"]["rate"])], header=HEADER))
    path = results.write(
        "ramp",
        {"machine": described, "highest_passing_rate": best, "first_failing_rate": failed, "steps": reports},
    )
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ramp", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default=STEPS, help="offered rates to try in order (default %(default)s)")
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds of sending per step (default %(default)s)"
    )
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure (default 2)")
    add_load_arguments(parser)
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()

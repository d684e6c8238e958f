"""`python -m bench.compare`: this service's turn ceiling beside a baseline peer's message ceiling, in one run.

The peer (`bench/peer.py`) is a minimal FastAPI + asyncpg + Redis pub/sub chat server that
inserts one row per message and fans it out; this service runs a whole turn per message (the
message and its reply persisted, a streamed reply, five events, all gap-free in seq order). Both
run as two workers on the same PostgreSQL and Redis, measured by the same open-loop generator
and the same pass rule (nothing lost, no error, fan-out p99 under 100 ms), one after the other
in the same run: the ratio is the figure, the absolute numbers depend on the machine's day.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvloop

from bench import deploy, machine, results, usage
from bench.load import add_load_arguments
from bench.ramp import HEADER, ramp, row
from bench.stats import table

PEER_STEPS = "500,750,1000,1250,1500,1750,2000,2500,3000"
SERVICE_STEPS = "250,400,500,600,700,800,900,1000,1200,1500"


async def _main(args: argparse.Namespace) -> None:
    found: dict[str, Any] = {}
    described: dict[str, Any] = {}
    for name, app, steps in (("peer", "peer", args.peer_steps), ("service", "server", args.service_steps)):
        print(f"\n== {name} ({'plain messages' if app == 'peer' else 'chat turns'})")
        async with deploy.deployment(args, app=app) as deployed:
            if not described:
                described = await machine.describe(pg_dsn=deployed.pg_dsn, redis_url=deployed.redis_url)
                described["postgresql_settings"] = await usage.pg_settings(deployed.pg_dsn)
                print(machine.summary_line(described))
            rates = [float(value) for value in steps.split(",")]
            best, failed, reports = await ramp(deployed, args, rates, plain=app == "peer")
        found[name] = {"highest_passing_rate": best, "first_failing_rate": failed, "steps": reports}
        print(f"{name}: highest passing rate {best}/s" + (f" (first failing: {failed})" if failed else ""))
    described["load_average_after"] = machine.load_average()
    peer_best, service_best = found["peer"]["highest_passing_rate"], found["service"]["highest_passing_rate"]
    ratio = round(service_best / peer_best, 2) if peer_best and service_best else None
    print("\n" + table([row(r) for r in found["peer"]["steps"]], header=HEADER))
    print(table([row(r) for r in found["service"]["steps"]], header=HEADER))
    print(f"\nservice turns/s / peer messages/s = {service_best} / {peer_best} = {ratio}")
    path = results.write("compare", {"machine": described, "ratio": ratio, **found})
    print(f"wrote {results.relative(path)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--peer-steps", default=PEER_STEPS, help="the peer's offered rates (default %(default)s)")
    parser.add_argument(
        "--service-steps", default=SERVICE_STEPS, help="the service's offered rates (default %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=15.0, help="seconds of sending per step (default %(default)s)"
    )
    parser.add_argument("--refine", type=int, default=2, help="bisection steps after the first failure (default 2)")
    add_load_arguments(parser)
    deploy.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.target:
        parser.error("bench.compare starts both deployments itself")
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()

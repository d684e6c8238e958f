"""A description of the machine and the software under test, stored with every result."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("uvicorn", "websockets", "uvloop", "fastapi", "sqlalchemy", "asyncpg", "redis", "hiredis", "picows")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


async def service_versions(*, pg_dsn: str, redis_url: str) -> dict[str, str]:
    versions = {}
    try:
        connection = await asyncpg.connect(pg_dsn, timeout=5)
        try:
            versions["postgresql"] = str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        versions["postgresql"] = f"unknown ({exc})"
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        versions["redis"] = str((await client.info("server"))["redis_version"])
    except (OSError, aioredis.RedisError) as exc:
        versions["redis"] = f"unknown ({exc})"
    finally:
        await client.aclose()
    return versions


def revision() -> dict[str, Any]:
    """The commit under test, and any uncommitted change to the code the servers run."""

    def git(*args: str) -> str:
        try:
            command = [shutil.which("git") or "git", *args]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "server", "migrations").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD") or None, "uncommitted_server_changes": changed}


async def describe(*, pg_dsn: str, redis_url: str) -> dict[str, Any]:
    """CPU, cores, RAM, load, Python, PostgreSQL, Redis and the library versions that matter here."""
    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average": load_average(),
        **await service_versions(pg_dsn=pg_dsn, redis_url=redis_url),
        "packages": packages,
        "revision": revision(),
    }


def summary_line(machine: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.2f}" for value in machine["load_average"])
    commit = machine.get("revision", {}).get("commit")
    dirty = " (uncommitted server changes)" if machine.get("revision", {}).get("uncommitted_server_changes") else ""
    return (
        f"commit {commit}{dirty}; {machine['cores']} cores, {machine['ram_gib']:g} GiB RAM, {machine['cpu']}; "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}, Redis {machine['redis']}; load average {load}"
    )

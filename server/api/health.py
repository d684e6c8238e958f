"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from server.api.deps import RuntimeDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

PROBE_TIMEOUT = 2.0
"""Each dependency gets this long to answer a probe."""


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    """ready: route traffic here. degraded: still route traffic here (chat works: messages are
    persisted and acked; fan-out to other workers catches up when Redis is back). unavailable:
    take this worker out (its database does not answer)."""
    database: Literal["ok", "down"]
    redis: Literal["ok", "down", "disabled"]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and serving."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """200 while the database answers (`degraded` when Redis does not); 503 when it does not.

    A Redis outage must not make a load balancer pull every worker at once: chat keeps working
    through it, so it is reported, not counted as "not ready".
    """
    seen: dict[str, str] = request.app.state.__dict__.setdefault("readiness_seen", {})
    database: Literal["ok", "down"] = "ok"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        _record(seen, "database", None)
    except Exception as exc:  # any failure means "not ready"
        database = "down"
        _record(seen, "database", exc)
    redis: Literal["ok", "down", "disabled"] = "disabled"
    if runtime.settings.redis_url:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):  # a paused Redis must not hold the probe
                await runtime.broker.ping()
            redis = "ok"
            _record(seen, "redis", None)
        except Exception as exc:
            redis = "down"
            _record(seen, "redis", exc)
    status: Literal["ready", "degraded", "unavailable"] = "ready"
    if database == "down":
        status = "unavailable"
    elif redis == "down":
        status = "degraded"
    body = Readiness(status=status, database=database, redis=redis)
    return JSONResponse(body.model_dump(), status_code=503 if status == "unavailable" else 200)


def _record(seen: dict[str, str], component: str, error: Exception | None) -> None:
    """Log a component going down (with the reason) or coming back, once per change, not once per probe."""
    status = "ok" if error is None else "down"
    if seen.get(component, "ok") == status:
        seen[component] = status
        return
    seen[component] = status
    if error is None:
        logger.info("Readiness: %s is back", component)
    else:
        logger.warning("Readiness: %s is down: %s: %s", component, type(error).__name__, error)

"""Liveness and readiness probes."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from server.api.deps import RuntimeDep

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "down"]
    redis: Literal["ok", "down", "disabled"]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is alive and serving."""
    return Health()


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(runtime: RuntimeDep, request: Request) -> JSONResponse:
    """The database (and Redis, when configured) answer: safe to route traffic here."""
    seen: dict[str, str] = request.app.state.__dict__.setdefault("readiness_seen", {})
    database: Literal["ok", "down"] = "ok"
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        _record(seen, "database", None)
    except Exception as exc:  # any failure means "not ready"
        database = "down"
        _record(seen, "database", exc)
    redis: Literal["ok", "down", "disabled"] = "disabled"
    if runtime.settings.redis_url:
        try:
            await runtime.broker.ping()
            redis = "ok"
            _record(seen, "redis", None)
        except Exception as exc:
            redis = "down"
            _record(seen, "redis", exc)
    ready = database == "ok" and redis != "down"
    body = Readiness(status="ready" if ready else "unavailable", database=database, redis=redis)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


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

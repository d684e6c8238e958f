"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from server.api.deps import RuntimeDep

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
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """The database (and Redis, when configured) answer: safe to route traffic here."""
    database: Literal["ok", "down"] = "ok"
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"; the reason is in the log
        database = "down"
    redis: Literal["ok", "down", "disabled"] = "disabled"
    if runtime.settings.redis_url:
        try:
            await runtime.broker.ping()
            redis = "ok"
        except Exception:
            redis = "down"
    ready = database == "ok" and redis != "down"
    body = Readiness(status="ready" if ready else "unavailable", database=database, redis=redis)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

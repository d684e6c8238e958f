"""`GET /metrics` on the service's own port: Prometheus' text format, for every worker, behind a bearer token.

Who may read it: with METRICS_TOKEN set, whoever sends `Authorization: Bearer <METRICS_TOKEN>`
(401 otherwise); without it, anyone in development and no one in production (404): the public
port never serves metrics by default. `python -m server` can serve them on a separate port
instead (METRICS_PORT, `server/__main__.py`). See docs/operations.md.
"""

from __future__ import annotations

import asyncio
import secrets

from fastapi import APIRouter, Request, Response

from server import scrape
from server.api.deps import RuntimeDep
from server.auth.bearer import bearer_token
from server.errors import AuthError, NotFoundError

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(runtime: RuntimeDep, request: Request) -> Response:
    settings = runtime.settings
    if settings.metrics_token is None:
        if settings.environment == "production":
            raise NotFoundError("Not Found")
    else:
        try:
            presented = bearer_token(request.headers.get("authorization"))
        except AuthError:
            presented = ""
        if not secrets.compare_digest(presented.encode(), settings.metrics_token.get_secret_value().encode()):
            raise AuthError("Metrics need the METRICS_TOKEN bearer token")
    runtime.sampler.sample()  # this worker's gauges as of now; the others' are at most a second old
    # Reads every worker's files: off the event loop.
    body, content_type = await asyncio.to_thread(scrape.exposition, request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})

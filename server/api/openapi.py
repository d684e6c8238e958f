"""Documented error responses for route decorators, so /docs shows every failure a route can give."""

from __future__ import annotations

from typing import Any

from server.schemas import ErrorResponse, ValidationErrorResponse

_DESCRIPTIONS = {
    401: "Missing, invalid or expired token",
    403: "The path's user_id is not the token's subject",
    404: "Not found, or not yours",
    409: "Conflicts with existing data",
    413: "Payload too large",
    429: "Rate limited: see the `Retry-After` header (seconds)",
    503: "A dependency is unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    # Field errors come as a list; a rule across fields (`before` with `after`) as one sentence.
    responses[422] = {"model": ValidationErrorResponse | ErrorResponse, "description": "Invalid input"}
    return responses

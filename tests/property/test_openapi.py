"""schemathesis over the app's own /openapi.json, on both stacks: no 5xx, and every response matches the schema.

Requests carry a real user's token and that user's id in `{user_id}`, so they reach the handlers
rather than stopping at 401/403. Each operation gets valid and invalid requests (positive and
negative generation); examples are bounded and derandomized: the same cases every run, well
under a minute for both stacks.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import BaseSchema, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from tests.support.live import LiveServer
from tests.support.settings import make_settings
from tests.support.users import AppUser

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 12
"""Per operation and generation mode."""

_PATHS = create_app(make_settings(demo_page=False)).openapi()["paths"]
CASES = sorted(
    (method.upper(), path, mode)
    for path, item in _PATHS.items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    # Invalid requests need something to make invalid: a parameter or a body.
    if mode is GenerationMode.POSITIVE or operation.get("parameters") or operation.get("requestBody")
)


@pytest.fixture(scope="module")
def api_schema(threaded_server: LiveServer) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{threaded_server.base_url}/openapi.json")


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_operation_answers_within_its_schema(
    api_schema: BaseSchema, api_user: AppUser, method: str, path: str, mode: GenerationMode
) -> None:
    operation = api_schema[path][method]
    owner = {"user_id": api_user.id} if "{user_id}" in path else None
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=owner)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def check(case: Case[Any]) -> None:
        case.call_and_validate(headers=api_user.headers, checks=CHECKS)

    check()

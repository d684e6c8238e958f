"""How long the provider waits before a retry, and when it does not retry at all."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from server.assistant.providers.retry import JITTER, RetryPolicy, parse_retry_after, retryable_status


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=8, base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    delays = [policy.delay(n) for n in range(1, 9)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(0.5 * 2 ** (n - 1), 4.0)
        assert delay is not None and ceiling * (1 - JITTER) <= delay <= ceiling
    assert policy.delay(9) is None  # bounded


def test_jitter_spreads_clients_that_failed_together() -> None:
    firsts = {RetryPolicy(rng=random.Random(seed)).delay(1) for seed in range(20)}
    assert len(firsts) == 20


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base_delay=0.5, rng=random.Random(1))
    assert policy.delay(1, retry_after=3.0) == 3.0
    short = policy.delay(1, retry_after=0.0)
    assert short is not None and short >= 0.5 * (1 - JITTER)


def test_a_retry_after_past_the_limit_is_no_retry() -> None:
    policy = RetryPolicy(max_retry_after=20.0)
    assert policy.delay(1, retry_after=20.0) == 20.0
    assert policy.delay(1, retry_after=20.5) is None


def test_no_retries_at_all() -> None:
    assert RetryPolicy(max_retries=0).delay(1) is None


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503, 529])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_retryable(status: int) -> None:
    assert retryable_status(status)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_other_client_errors_are_not(status: int) -> None:
    assert not retryable_status(status)


NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),  # OpenAI's header wins: it is exact
        ({"retry-after-ms": "soon", "retry-after": "1"}, 1.0),
        ({"retry-after": format_datetime(NOW.replace(second=30), usegmt=True)}, 30.0),
        ({"retry-after": format_datetime(NOW.replace(hour=11), usegmt=True)}, 0.0),  # a date in the past
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW.timestamp) == seconds

"""How long the provider waits before a retry, and when it does not retry at all."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from server.assistant.providers.retry import JITTER, RetryPolicy, parse_retry_after, retryable_status


def waits(policy: RetryPolicy, *retry_afters: float | None) -> list[float | None]:
    retries = policy.start()
    return [retries.next_delay(retry_after) for retry_after in retry_afters]


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=8, base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    delays = waits(policy, *[None] * 9)
    for n, delay in enumerate(delays[:8]):
        ceiling = min(0.5 * 2**n, 4.0)
        assert delay is not None and ceiling * (1 - JITTER) <= delay <= ceiling
    assert delays[8] is None  # bounded


def test_every_call_starts_again_from_the_first_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5, rng=random.Random(1))
    first, second = waits(policy, None, None), waits(policy, None, None)
    assert all(d is not None and d <= 0.5 for d in (first[0], second[0]))
    assert all(d is not None and d > 0.5 for d in (first[1], second[1]))


def test_jitter_spreads_clients_that_failed_together() -> None:
    firsts = {RetryPolicy(rng=random.Random(seed)).start().next_delay() for seed in range(20)}
    assert len(firsts) == 20


def test_retry_after_is_a_floor_and_does_not_lengthen_the_backoff() -> None:
    policy = RetryPolicy(max_retries=4, base_delay=0.5, rng=random.Random(1))
    after_429, tiny, first_guess, second_guess = waits(policy, 3.0, 0.0, None, None)
    assert after_429 == 3.0
    assert tiny is not None and 0.5 * (1 - JITTER) <= tiny <= 0.5  # "0" does not make us hammer the server
    # The server's waits were not guesses: our own backoff starts at its first step.
    assert first_guess is not None and 0.5 * (1 - JITTER) <= first_guess <= 0.5
    assert second_guess is not None and 1.0 * (1 - JITTER) <= second_guess <= 1.0


def test_a_retry_after_past_the_limit_is_no_retry() -> None:
    policy = RetryPolicy(max_retry_after=20.0)
    assert waits(policy, 20.0) == [20.0]
    assert waits(policy, 20.5) == [None]


def test_no_retries_at_all() -> None:
    assert waits(RetryPolicy(max_retries=0), None) == [None]


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

"""When to try a model call again, and how long to wait first: bounded, backing off with jitter, honouring Retry-After.

The policy only answers "may there be another attempt, and after how long". Whether a failure
may be retried at all (nothing of the reply has reached the user yet, the status is transient)
is the provider's decision, because only the provider knows how far its stream got. A library
such as tenacity wraps a whole call; here the decision depends on what one attempt streamed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

DEFAULT_MAX_RETRIES = 2
"""As the OpenAI and Anthropic SDKs do: enough for a blip, too few to pile onto an outage."""
DEFAULT_BASE_DELAY = 0.5
DEFAULT_MAX_DELAY = 8.0
JITTER = 0.25
"""Each wait is cut by up to a quarter, at random, so clients that failed together do not retry together."""
MAX_RETRY_AFTER = 20.0
"""A server that asks for a longer wait is not waited for: the turn fails at once with the server's reason."""
RETRYABLE_CLIENT_ERRORS = frozenset({408, 409, 429})
"""Timeout, conflict, rate limit: the only 4xx that a second identical request can cure."""


def retryable_status(status: int) -> bool:
    return status in RETRYABLE_CLIENT_ERRORS or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = DEFAULT_MAX_RETRIES
    base_delay: float = DEFAULT_BASE_DELAY
    """The first backoff; it doubles with each failure that came without a Retry-After, up to `max_delay`."""
    max_delay: float = DEFAULT_MAX_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random, compare=False)
    """Jitter only, never security: a generator of its own, so tests can seed it without touching `random`."""

    def start(self) -> Retries:
        """The retries of one model call."""
        return Retries(self)


class Retries:
    """How many retries one call has left, and how long to wait before the next.

    The backoff doubles only with failures that came without a Retry-After. A server that says
    how long to wait paces the client itself: that wait replaces our guess, it does not also
    lengthen the next one. It is still a floor only: the wait is never shorter than the current
    backoff either, so a server that always answers "Retry-After: 0" is not hammered.
    """

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.made = 0
        self._guesses = 0

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when there must be none."""
        policy = self.policy
        if self.made >= policy.max_retries:
            return None
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        self.made += 1
        if retry_after is None:
            self._guesses += 1
        ceiling = min(policy.base_delay * 2.0 ** max(self._guesses - 1, 0), max(policy.max_delay, policy.base_delay))
        backoff = ceiling * (1 - JITTER * policy.rng.random())
        return max(backoff, retry_after or 0.0)


def parse_retry_after(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """The wait a response asks for, in seconds: `retry-after-ms` (OpenAI's), else `retry-after` (seconds or a date)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)

"""When to try a model call again, and how long to wait first: bounded, backing off with jitter, honouring Retry-After.

The policy only answers "how long before retry number n, if at all". Whether a failure may be
retried at all (nothing of the reply has reached the user yet, the status is transient) is
the provider's decision, because only the provider knows how far its stream got. A library
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
    """The wait before the first retry; it doubles for each retry after it, up to `max_delay`."""
    max_delay: float = DEFAULT_MAX_DELAY
    max_retry_after: float = MAX_RETRY_AFTER
    rng: random.Random = field(default_factory=random.Random, compare=False)
    """Jitter only, never security: a generator of its own, so tests can seed it without touching `random`."""

    def delay(self, retry: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number `retry` (1 for the first), or None when it must not happen.

        Exponential backoff with jitter. A Retry-After is a floor: the wait is never shorter than
        the server asked for, nor shorter than the backoff (a server that always says "0" must not
        make us hammer it).
        """
        if retry > self.max_retries:
            return None
        if retry_after is not None and retry_after > self.max_retry_after:
            return None
        backoff = min(self.base_delay * 2.0 ** (retry - 1), self.max_delay) * (1 - JITTER * self.rng.random())
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

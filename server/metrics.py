"""Prometheus counters, on the client library's default registry (the endpoint that serves them is separate).

Names follow Prometheus' conventions: a `todochat_` prefix, and counters exported with `_total`.
"""

from __future__ import annotations

from prometheus_client import Counter

RATE_LIMITED = Counter(
    "todochat_rate_limited",
    "Requests, frames and tool calls refused by an abuse limit.",
    ["limit"],
)
"""`limit` is the policy's name (`login_account`, `chat_turns`, ...) or `password_queue` for a full bcrypt queue."""

RATE_LIMIT_STORAGE_ERRORS = Counter(
    "todochat_rate_limit_storage_errors",
    "Rate-limit storage calls that failed or timed out; the check was skipped (or counted per worker).",
)

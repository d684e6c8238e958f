"""Every Prometheus metric of the service, on the client library's default registry (`server/scrape.py` serves them).

Names follow Prometheus' conventions: a `todochat_` prefix, counters exported with `_total`,
durations in seconds. No label names a user, a conversation or a socket: every label has a
handful of values, so a series costs the same however many users there are. What to alert on
is in docs/operations.md.

Under `python -m server` the values live in per-process files (the client's multiprocess mode,
`PROMETHEUS_MULTIPROC_DIR`), so any worker's `/metrics` reports the sum over every worker of
the machine. Gauges say how they combine (`multiprocess_mode`): `livesum` adds up the workers
that are alive. Gauges of a worker's state are set by `Sampler` (every second and at each
scrape) rather than moved on every change, which keeps them off the hot path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

# --- sockets and delivery -------------------------------------------------------------------

SOCKETS_OPEN = Gauge(
    "todochat_sockets_open",
    "Authenticated WebSocket connections being served.",
    multiprocess_mode="livesum",
)
"""Sockets past authentication, until they close; summed over live workers."""

SLOW_CONSUMER_CLOSES = Counter(
    "todochat_slow_consumer_closes",
    "Sockets closed (1013) because their queue of undelivered events filled up.",
)
"""Each got `resync_required` first (also counted in `todochat_resyncs_total{reason="slow_consumer"}`)."""

RESYNCS = Counter(
    "todochat_resyncs",
    "resync_required frames sent: the client reloads from REST.",
    ["reason"],
)
"""`reason`: `slow_consumer` (its queue filled), `too_far_behind` (a resume or catch-up past
RESUME_MAX_EVENTS, or events already pruned), `ahead_of_server` (a resume from a seq the log never had)."""

FANOUT_LAG = Histogram(
    "todochat_fanout_lag_seconds",
    "From a worker publishing a persisted event (just after its commit) to another worker writing it to a socket.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
"""Measured by the receiving worker, per event and socket, for events that came through the broker:
its publisher stamps each broker message with the wall-clock time the oldest of its events was
published, and the socket's writer observes `now - stamp` once the event is written. Events a
worker delivers to its own sockets are not in it (they skip the broker). Across machines it
includes the offset between their clocks; an event held back for an earlier one that never came
live (filled from the log) is not observed."""

# --- turns ----------------------------------------------------------------------------------

TURNS_STARTED = Counter(
    "todochat_turns_started",
    "Turns started: a user message persisted and acknowledged, the reply begun.",
)

TURNS_ENDED = Counter(
    "todochat_turns_ended",
    "Turns ended, by outcome, counted where they ended.",
    ["outcome"],
)
"""`outcome`: `done`, `cancelled`, `failed` (the model server failed, or TURN_TIMEOUT), `interrupted`
(its worker stopped: counted by the worker that swept it up, see `server/chat/leases.py`)."""

TURNS_ENDED_BY_OUTCOME = {
    outcome: TURNS_ENDED.labels(outcome=outcome) for outcome in ("done", "cancelled", "failed", "interrupted")
}
"""The children, made once: `labels()` on the hot path costs a lock and a dictionary lookup."""

TURNS_IN_FLIGHT = Gauge(
    "todochat_turns_in_flight",
    "Turns admitted and not yet persisted (admission control: MAX_TURNS_IN_FLIGHT per worker).",
    multiprocess_mode="livesum",
)

TURN_CAPACITY = Gauge(
    "todochat_turns_capacity",
    "MAX_TURNS_IN_FLIGHT summed over live workers: the most `todochat_turns_in_flight` can reach.",
    multiprocess_mode="livesum",
)

OVERLOADED = Counter(
    "todochat_overloaded",
    "Chat messages refused at once with `overloaded` because every turn slot of the worker was taken.",
)

ACK_SECONDS = Histogram(
    "todochat_ack_seconds",
    "From a chat message reaching the service to its ack (admission, limit check, the commit).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
"""Acks only (a retried message's earlier ack too); refusals are not in it."""

TURN_SECONDS = Histogram(
    "todochat_turn_seconds",
    "From a turn's ack to its reply persisted and its turn.end published, whatever the outcome.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)

# --- broker ---------------------------------------------------------------------------------

BROKER_RECONNECTS = Counter(
    "todochat_broker_reconnects",
    "Times the broker's subscriber connection came back after a loss (sockets then catch up from the log).",
)

BROKER_ERRORS = Counter(
    "todochat_broker_errors",
    "Broker (Redis) operations that failed.",
    ["operation"],
)
"""`operation`: `publish` (a publishing round dropped: its users catch up from the log later),
`subscribe` (a subscribe or unsubscribe), `receive` (the subscriber connection lost, or a
reconnect attempt that failed)."""

BROKER_PUBLISH_ERRORS = BROKER_ERRORS.labels(operation="publish")

# --- storage --------------------------------------------------------------------------------

DATABASE_ERRORS = Counter(
    "todochat_database_errors",
    "Database operations that failed because the database was unavailable (not bugs), by where.",
    ["surface"],
)
"""`surface`: `rest` (a 503), `socket` (an `unavailable` frame, or a socket refused at authentication),
`turn` (saving a reply, retried), `lease` (a lease renewal or sweep, retried next heartbeat)."""

DB_POOL_IN_USE = Gauge(
    "todochat_db_pool_in_use",
    "Database connections checked out, by pool.",
    ["pool"],
    multiprocess_mode="livesum",
)
"""`pool`: `rest` (SQLAlchemy: REST, tool calls, the event log; DB_POOL_SIZE + DB_MAX_OVERFLOW),
`turns` (asyncpg: the turn's hot path; TURN_POOL_SIZE; PostgreSQL only)."""

DB_POOL_SIZE = Gauge(
    "todochat_db_pool_size",
    "The most connections each pool may open, by pool (summed over live workers).",
    ["pool"],
    multiprocess_mode="livesum",
)

# --- abuse limits and sessions --------------------------------------------------------------

RATE_LIMITED = Counter(
    "todochat_rate_limited",
    "Requests, frames and tool calls refused by an abuse limit.",
    ["limit"],
)
"""`limit` is the policy's name (`login_account`, `chat_turns`, ...), `password_queue` for a full bcrypt queue,
`concurrent_turns` (MAX_CONCURRENT_TURNS), `ws_frames` (a socket's frame budget) or `ws_sockets` (WS_MAX_PER_USER)."""

RATE_LIMIT_STORAGE_ERRORS = Counter(
    "todochat_rate_limit_storage_errors",
    "Rate-limit storage calls that failed or timed out; the check was skipped (or counted per worker).",
)

SESSION_CACHE = Counter(
    "todochat_session_cache",
    "Session checks answered from the worker's cache (`hit`) or by a database read (`miss`).",
    ["result"],
)

SESSION_CACHE_HIT = SESSION_CACHE.labels(result="hit")
SESSION_CACHE_MISS = SESSION_CACHE.labels(result="miss")

# --- HTTP -----------------------------------------------------------------------------------

HTTP_RESPONSES = Counter(
    "todochat_http_responses",
    "HTTP responses, by status class (2xx, 3xx, 4xx, 5xx).",
    ["status"],
)

HTTP_BY_CLASS = {code: HTTP_RESPONSES.labels(status=f"{code}xx") for code in range(2, 6)}


def count_response(status: int) -> None:
    child = HTTP_BY_CLASS.get(status // 100)
    if child is not None:
        child.inc()


# --- sampled gauges -------------------------------------------------------------------------

SAMPLE_EVERY = 1.0
"""Seconds between two samples of a worker's gauges."""


class Sampler:
    """Sets this worker's state gauges from probes: every SAMPLE_EVERY seconds, and when a scrape asks."""

    def __init__(self) -> None:
        self._probes: list[tuple[Gauge, Callable[[], float]]] = []

    def add(self, gauge: Gauge, probe: Callable[[], float]) -> None:
        self._probes.append((gauge, probe))

    def sample(self) -> None:
        for gauge, probe in self._probes:
            gauge.set(probe())

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_EVERY)  # a sampling period, not a wait for state

"""The per-worker session cache and device labels (the database and broker paths run in the integration tests)."""

from __future__ import annotations

import pytest

from server.auth.sessions import ENDED, SessionCache, device_label


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_are_trusted_for_the_ttl_only() -> None:
    clock = Clock()
    cache = SessionCache(ttl=30, size=10, clock=clock)
    assert cache.get("a") is None
    assert cache.remember("a", 7) == 7
    clock.now += 29.9
    assert cache.get("a") == 7
    clock.now += 0.1
    assert cache.get("a") is None  # asked again from the database
    assert len(cache) == 0


def test_an_end_wins_over_a_read_that_started_before_it() -> None:
    cache = SessionCache(ttl=30, size=10, clock=Clock())
    cache.end("a")  # the broadcast arrived while the database read was in flight
    assert cache.remember("a", 7) == ENDED
    assert cache.get("a") == ENDED
    assert cache.remember("b", ENDED) == ENDED


def test_an_end_replaces_what_was_known() -> None:
    cache = SessionCache(ttl=30, size=10, clock=Clock())
    cache.remember("a", 7)
    cache.end("a")
    assert cache.get("a") == ENDED


def test_size_is_bounded_and_the_oldest_goes_first() -> None:
    cache = SessionCache(ttl=30, size=3, clock=Clock())
    for sid in ("a", "b", "c"):
        cache.remember(sid, 1)
    cache.remember("a", 1)  # refreshed: now the newest
    cache.remember("d", 1)
    assert len(cache) == 3
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("d") == 1


def test_after_a_broker_outage_only_the_ends_are_kept() -> None:
    cache = SessionCache(ttl=30, size=10, clock=Clock())
    cache.remember("alive", 1)
    cache.end("gone")
    cache.forget_alive()
    assert cache.get("alive") is None and cache.get("gone") == ENDED


@pytest.mark.parametrize(
    ("given", "user_agent", "label"),
    [
        ("Ada's phone", "curl/8", "Ada's phone"),
        (None, "Mozilla/5.0 (X11)\x00\x1b[31m Firefox", "Mozilla/5.0 (X11) [31m Firefox"),
        ("   ", "curl/8.5", "curl/8.5"),
        (None, None, "unknown"),
        (None, "\x00\x01", "unknown"),
        (None, "é" * 300, "é" * 100),
    ],
    ids=["given", "sanitised-agent", "blank-given", "nothing", "only-control", "truncated"],
)
def test_device_label(given: str | None, user_agent: str | None, label: str) -> None:
    assert device_label(given, user_agent) == label

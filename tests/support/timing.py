"""One env-tunable unit for every wait in the tests (slow CI machines set TEST_TIMEOUT_SCALE)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

SCALE = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
TIMEOUT = 10.0 * SCALE
"""Upper bound for something that should happen promptly."""
QUIET = 0.3 * SCALE
"""How long to listen when asserting that nothing arrives."""


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], *, timeout: float = TIMEOUT, step: float = 0.02
) -> None:
    """Poll `check` until it is true, failing after `timeout` (for state with no event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout:.1f}s")
        await asyncio.sleep(step)

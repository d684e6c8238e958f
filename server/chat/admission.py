"""Admission control: a bound on the turns this worker has in flight, so overload sheds instead of collapsing.

A turn holds its slot from the moment its message is submitted until its reply is persisted.
When every slot is taken, the next message is refused at once with `overloaded` and a
`retry_after`, before any database or Redis work, and what was accepted keeps its pace.
"""

from __future__ import annotations

from server import metrics
from server.errors import OverloadedError

RETRY_AFTER = 1


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    def enter(self) -> None:
        """Take a slot, or raise `OverloadedError`."""
        if self.in_flight >= self.limit:
            self.refused += 1
            metrics.OVERLOADED.inc()
            raise OverloadedError(extra={"retry_after": RETRY_AFTER})
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

"""Ordered, exactly-once delivery of one user's events to one socket: what to send now, and when to read the log.

The sequencer keeps `cursor`, the last seq sent. A live event with the next seq goes out at
once; a later one waits briefly for the missing seqs (events from two workers can overtake each
other), then the gap is read from the event log; older seqs are duplicates and dropped. Because
an event is published only after its transaction commits, and one user's transactions commit in
seq order, a gap seen live is always readable from the log. What cannot be replayed (too far
behind, or pruned) becomes one `resync_required`: the client reloads from REST.

It does no I/O of its own: the log is injected, and every method returns the frame texts to
send, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import orjson

from server import metrics, protocol

GAP_WAIT = 0.15
"""How long a live event waits for its missing predecessors before they are read from the log."""


class EventLog(Protocol):
    async def last_seq(self, user_id: int) -> int: ...

    async def read_after(
        self, user_id: int, after_seq: int, *, limit: int, up_to: int | None = None
    ) -> Sequence[tuple[int, str]]:
        """Up to `limit` events with after_seq < seq (<= up_to), oldest first, as (seq, frame JSON)."""


class Sequencer:
    __slots__ = ("_held", "_log", "_max_replay", "_user_id", "cursor", "floor", "gap_deadline")

    def __init__(self, log: EventLog, *, user_id: int, start: int, max_replay: int) -> None:
        self._log = log
        self._user_id = user_id
        self._max_replay = max_replay
        self.cursor = start
        """The last seq sent on this socket."""
        self.floor = start
        """Every seq in (floor, cursor] was sent on this socket."""
        self._held: dict[int, str] = {}
        self.gap_deadline = 0.0
        """When the oldest held event stops waiting for its predecessors (monotonic time)."""

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def offer(self, seq: int, text: str, now: float) -> list[str]:
        """A live event: the texts to send now (it and any held successors), or nothing yet."""
        if seq == self.cursor + 1:
            self.cursor = seq
            return [text, *self._release(now)]
        if seq > self.cursor:
            if not self._held:
                self.gap_deadline = now + GAP_WAIT
            self._held[seq] = text
        return []  # a duplicate, or held for its predecessors

    def _release(self, now: float) -> list[str]:
        out = []
        while (text := self._held.pop(self.cursor + 1, None)) is not None:
            out.append(text)
            self.cursor += 1
        for seq in [seq for seq in self._held if seq <= self.cursor]:
            del self._held[seq]
        if self._held:
            self.gap_deadline = now + GAP_WAIT
        return out

    async def fill_gap(self, now: float) -> list[str]:
        """Every logged event after `cursor` (a gap that did not fill live, or a catch-up), then what was held."""
        latest = await self._log.last_seq(self._user_id)  # first: every event up to it is committed
        rows = await self._log.read_after(self._user_id, self.cursor, limit=self._max_replay + 1)
        if (
            len(rows) > self._max_replay
            or (rows and rows[0][0] != self.cursor + 1)
            or (not rows and latest > self.cursor)
        ):
            # Too far behind, or the events were pruned: the client reloads from REST.
            self.cursor = self.floor = latest
            self._held.clear()
            metrics.RESYNCS.labels(reason="too_far_behind").inc()
            return [_text(protocol.resync_required(latest, "too far behind to replay"))]
        out = [text for _, text in rows]
        if rows:
            self.cursor = rows[-1][0]
        return [*out, *self._release(now)]

    async def resume(self, after_seq: int) -> list[str]:
        """`resume`: what the client missed, up to where this socket's own stream began.

        Everything in (floor, cursor] was already sent here, so only (after_seq, floor] is read
        from the log: nothing is sent twice. (On a fresh socket floor == cursor, and the replay
        runs before any live event, so it is also in order.)
        """
        if after_seq > self.cursor:
            # The client claims to have seen events the log does not have (a reset database?).
            metrics.RESYNCS.labels(reason="ahead_of_server").inc()
            return [_text(protocol.resync_required(self.cursor, "after_seq is ahead of the server"))]
        if after_seq >= self.floor:
            return []
        wanted = self.floor - after_seq
        rows: Sequence[tuple[int, str]] = []
        if wanted <= self._max_replay:
            rows = await self._log.read_after(self._user_id, after_seq, limit=wanted, up_to=self.floor)
        if len(rows) != wanted:
            self.floor = self.cursor
            metrics.RESYNCS.labels(reason="too_far_behind").inc()
            return [_text(protocol.resync_required(self.cursor, "too far behind to replay"))]
        self.floor = after_seq
        return [text for _, text in rows]

    def drop_held(self) -> None:
        self._held.clear()

    def overflowed(self) -> str:
        """The socket fell too far behind live: tell it where the log stands (it reloads from REST)."""
        metrics.RESYNCS.labels(reason="slow_consumer").inc()
        return _text(protocol.resync_required(self.cursor, "slow consumer: too many events queued"))


def _text(frame: object) -> str:
    return orjson.dumps(frame).decode()

"""Open-loop scheduling and exact accounting of chat turns: what was sent, acked, fanned out, lost or duplicated.

Every turn has a scheduled time fixed before the run starts. The sender sends it at that time
or, if it is late, as soon as it can, and every latency is measured from the scheduled time,
so a stalled server cannot hide its stall by slowing the generator down (coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import orjson

from bench.client import BenchSocket
from bench.stats import summarize


@dataclass(slots=True)
class Turn:
    """One `chat` frame of the plan and what became of it (times are perf_counter seconds)."""

    index: int
    user: int
    offset: float
    """Scheduled send time, seconds after the run's start."""
    client_msg_id: str
    payload: bytes
    scheduled: float = 0.0
    sent: float = 0.0
    acked: float = 0.0
    seq: int | None = None
    turn_id: str | None = None
    conversation_id: int | None = None
    error: str | None = None
    done: bool = False


@dataclass
class SocketLog:
    """What one socket saw of its user's event stream, for seq accounting."""

    baseline: int = 0
    """Seqs up to here belong to earlier phases."""
    seqs: set[int] = field(default_factory=set)
    duplicates: int = 0
    types: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.baseline = max(self.seqs, default=self.baseline)
        self.seqs = set()
        self.duplicates = 0
        self.types = Counter()


class Tracker:
    """The sink of every socket: routes acks and errors to their turn, and arrivals by `turn_id`."""

    def __init__(
        self, senders: Sequence[BenchSocket], receivers: Sequence[BenchSocket], *, plain: bool = False
    ) -> None:
        self.plain = plain
        """Plain messages (the baseline peer): no turn, so a message is done once it is fanned out."""
        self.senders = senders
        self.receivers = receivers
        self.logs = {id(sock): SocketLog() for sock in (*senders, *receivers)}
        self.turns: list[Turn] = []
        self.by_client_msg_id: dict[str, Turn] = {}
        self.by_turn_id: dict[str, Turn] = {}
        # Arrival times by turn_id: the user's `message` event and `turn.end`, on each side.
        self.remote_message: dict[str, float] = {}
        self.remote_end: dict[str, float] = {}
        self.local_message: dict[str, float] = {}
        self.local_end: dict[str, float] = {}
        self.remote_message_seq: dict[str, int] = {}
        self.end_status: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.duplicate_acks = 0
        self.unknown = 0
        self.resolved = 0
        self._target = 0
        self._all_resolved = asyncio.Event()
        for sock in (*senders, *receivers):
            sock.sink = self.sink

    # --- the sink: called from picows' read callback, so it stays small -------------------------

    def sink(self, sock: BenchSocket, frame: dict[str, Any], now: float) -> None:
        kind = frame.get("type")
        log = self.logs[id(sock)]
        log.types[kind] += 1  # type: ignore[index]
        # An ack repeats its message's seq but is a reply, not part of the event stream.
        seq = frame.get("seq") if kind != "ack" else None
        if seq is not None:
            if seq in log.seqs or seq <= log.baseline:
                log.duplicates += 1
            else:
                log.seqs.add(seq)
        remote = sock.role == "receiver"
        if kind == "message":
            message = frame["message"]
            if message["role"] == "user":
                turn_id = message["turn_id"]
                if remote:
                    self.remote_message.setdefault(turn_id, now)
                    if seq is not None:
                        self.remote_message_seq.setdefault(turn_id, seq)
                else:
                    self.local_message.setdefault(turn_id, now)
                self._check(turn_id)
        elif kind == "turn.end":
            turn_id = frame["turn_id"]
            (self.remote_end if remote else self.local_end).setdefault(turn_id, now)
            if remote:
                self.end_status[frame["status"]] += 1
            self._check(turn_id)
        elif kind == "ack":
            turn = self.by_client_msg_id.get(frame["client_msg_id"])
            if turn is None:
                self.unknown += 1
            elif turn.acked:
                self.duplicate_acks += 1
            else:
                turn.acked = now
                turn.seq = frame["seq"]
                turn.turn_id = frame["turn_id"]
                turn.conversation_id = frame["conversation_id"]
                self.by_turn_id[frame["turn_id"]] = turn
                self._check(frame["turn_id"])
        elif kind == "error":
            self.errors[frame["code"]] += 1
            turn = self.by_client_msg_id.get(frame.get("ref") or "")
            if turn is not None and turn.error is None and not turn.acked:
                turn.error = frame["code"]
                self._resolve(turn)

    def _check(self, turn_id: str) -> None:
        turn = self.by_turn_id.get(turn_id)
        if turn is None or turn.done or turn_id not in self.remote_message or turn_id not in self.local_message:
            return
        if self.plain or (turn_id in self.remote_end and turn_id in self.local_end):
            self._resolve(turn)

    def _resolve(self, turn: Turn) -> None:
        turn.done = True
        self.resolved += 1
        if self.resolved >= self._target:
            self._all_resolved.set()

    # --- running a plan ---------------------------------------------------------------------------

    def plan(self, *, rate: float, count: int, tag: str, text: str, conversations: Sequence[int | None]) -> list[Turn]:
        """`count` turns at `rate` a second, round-robin over the users (each user's spaced evenly)."""
        users = len(self.senders)
        turns = []
        for index in range(count):
            user = index % users
            client_msg_id = f"{tag}-{index}"
            payload = orjson.dumps(
                {
                    "type": "chat",
                    "conversation_id": conversations[user],
                    "message": f"{text} #{index}",
                    "client_msg_id": client_msg_id,
                }
            )
            turns.append(
                Turn(index=index, user=user, offset=index / rate, client_msg_id=client_msg_id, payload=payload)
            )
        return turns

    async def run(self, turns: list[Turn], *, drain: float, lead: float = 0.2) -> float:
        """Send `turns` on schedule, then wait until all are resolved or `drain` seconds pass; returns t0."""
        for turn in turns:
            self.by_client_msg_id[turn.client_msg_id] = turn
        self.turns = turns
        start = perf_counter() + lead
        for turn in turns:
            turn.scheduled = start + turn.offset
        await self._send(turns)
        self._target = self.resolved + sum(1 for turn in turns if not turn.done)
        self._all_resolved.clear()
        if self.resolved < self._target:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain):
                    await self._all_resolved.wait()
        return start

    async def _send(self, turns: list[Turn]) -> None:
        senders = self.senders
        index, total = 0, len(turns)
        while index < total:
            now = perf_counter()
            # Everything due is sent now, late ones included: the schedule never slips.
            while index < total and turns[index].scheduled <= now:
                turn = turns[index]
                sock = senders[turn.user]
                if sock.connected:
                    sock.send(turn.payload)
                    turn.sent = perf_counter()
                index += 1
            if index < total:
                await asyncio.sleep(max(0.0, turns[index].scheduled - perf_counter()))

    def new_phase(self) -> None:
        """Forget the previous phase's seqs and counters (its events have all arrived)."""
        for log in self.logs.values():
            log.reset()
        self.end_status.clear()
        self.errors.clear()
        self.duplicate_acks = self.unknown = 0

    # --- the verdict ------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        turns = self.turns
        sent = [t for t in turns if t.sent]
        acked = [t for t in sent if t.acked]
        unanswered = [t for t in sent if not t.acked and t.error is None]

        def missing(arrivals: dict[str, float]) -> int:
            return sum(1 for t in acked if t.turn_id not in arrivals)

        lost_message, lost_end = missing(self.remote_message), missing(self.remote_end)
        seq_mismatch = sum(
            1 for t in acked if t.turn_id in self.remote_message_seq and self.remote_message_seq[t.turn_id] != t.seq
        )
        gaps, duplicates = self._seq_accounting()
        # Lost: acked (so committed), yet its message or turn.end never reached the other worker's socket.
        lost = sum(
            1
            for t in acked
            if t.turn_id not in self.remote_message or (not self.plain and t.turn_id not in self.remote_end)
        )
        first = min((t.sent for t in sent), default=0.0)
        last = max((t.sent for t in sent), default=0.0)
        return {
            "counts": {
                "planned": len(turns),
                "sent": len(sent),
                "acked": len(acked),
                "errors": dict(self.errors),
                "unanswered": len(unanswered),
                "received_messages": len(acked) - lost_message,
                "received_turn_ends": len(acked) - lost_end,
                "lost": lost,
                "lost_messages": lost_message,
                "lost_turn_ends": lost_end,
                "lost_on_sender_socket": missing(self.local_message) + (0 if self.plain else missing(self.local_end)),
                "duplicates": duplicates,
                "duplicate_acks": self.duplicate_acks,
                "seq_gaps": gaps,
                "ack_seq_mismatches": seq_mismatch,
                "turn_end_status": dict(self.end_status),
                "resync_required": sum(log.types["resync_required"] for log in self.logs.values()),
                "sockets_closed": sum(1 for s in (*self.senders, *self.receivers) if not s.connected),
            },
            "send_rate": round((len(sent) - 1) / (last - first), 1) if last > first else None,
            "latency_ms": {
                "ack": summarize([t.acked - t.scheduled for t in acked]),
                "fanout": self._latency(acked, self.remote_message),
                "turn_end": self._latency(acked, self.remote_end),
                "fanout_same_worker": self._latency(acked, self.local_message),
                "ack_from_actual_send": summarize([t.acked - t.sent for t in acked]),
                "send_lag": summarize([t.sent - t.scheduled for t in sent]),
            },
        }

    @staticmethod
    def _latency(turns: list[Turn], arrivals: dict[str, float]) -> dict[str, Any]:
        return summarize([arrivals[t.turn_id] - t.scheduled for t in turns if t.turn_id in arrivals])

    def _seq_accounting(self) -> tuple[int, int]:
        """Gaps: seqs of the user's log (up to the highest either socket saw) that a socket never got."""
        gaps = duplicates = 0
        for sender, receiver in zip(self.senders, self.receivers, strict=True):
            pair = (self.logs[id(sender)], self.logs[id(receiver)])
            top = max(max(log.seqs, default=log.baseline) for log in pair)
            for log in pair:
                gaps += (top - log.baseline) - len(log.seqs)
                duplicates += log.duplicates
        return gaps, duplicates

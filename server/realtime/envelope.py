"""What travels through the broker: a batch of client frames (each with its seq, if persisted) or control messages.

Wire form, one broker message per batch, one line each (JSON text never holds a raw newline)::

    <origin worker id> <published>
    E<seq> <frame JSON>      a persisted event
    E <frame JSON>           an ephemeral frame (`delta`)
    C <control JSON>         worker-to-worker control (`cancel`, `catch_up`, ...)

The seq sits in a header so a receiving worker orders and de-duplicates without parsing the
frame; the frame text is sent to sockets exactly as published. The origin lets the publishing
worker skip its own batches: it delivered them to its own sockets before publishing. `published`
(optional: older workers send none, and ignore it) is the Unix time the oldest event of the batch
was published, which the receiving sockets measure fan-out lag from (`todochat_fanout_lag_seconds`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Envelope:
    text: str
    """A frame JSON text for clients, or a control message's JSON."""
    seq: int | None = None
    """Set for persisted events; `None` for ephemeral frames and control messages."""
    control: bool = False
    published: float | None = None
    """For an envelope that came through the broker: the Unix time its batch was published, if sent."""

    @classmethod
    def event(cls, frame: Any) -> Envelope:
        """An envelope for `frame` (a dict), persisted (it has a `seq`) or ephemeral."""
        seq = frame.get("seq")
        return cls(text=orjson.dumps(frame).decode(), seq=seq if isinstance(seq, int) else None)

    @classmethod
    def command(cls, message: dict[str, Any]) -> Envelope:
        return cls(text=orjson.dumps(message).decode(), control=True)

    def line(self) -> str:
        head = "C" if self.control else "E" if self.seq is None else f"E{self.seq}"
        return f"{head} {self.text}"


def encode_batch(origin: str, envelopes: Sequence[Envelope], *, published: float | None = None) -> bytes:
    head = origin if published is None else f"{origin} {published:.6f}"
    return "\n".join([head, *(envelope.line() for envelope in envelopes)]).encode()


def decode_batch(data: bytes | str) -> tuple[str, list[Envelope]]:
    """The origin and the envelopes of one broker message; `ValueError` if it is not one."""
    raw = data.decode() if isinstance(data, bytes) else data
    first, *lines = raw.split("\n")
    origin, _, stamp = first.partition(" ")
    published = _stamp(stamp)
    envelopes = []
    for line in lines:
        head, sep, text = line.partition(" ")
        if not sep or head[:1] not in ("E", "C"):
            raise ValueError(f"not an envelope: {line[:40]!r}")
        if head == "C":
            envelopes.append(Envelope(text=text, control=True))
        else:
            envelopes.append(Envelope(text=text, seq=int(head[1:]) if len(head) > 1 else None, published=published))
    if not origin or not envelopes:
        raise ValueError(f"not an envelope batch: {raw[:40]!r}")
    return origin, envelopes


def _stamp(text: str) -> float | None:
    """The batch's publication time; one we cannot read costs a measurement, not the events."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None

"""What travels through the broker: a client frame (with its seq, if persisted) or a control message.

Wire form, one broker message each: ``E<seq>\\n<frame JSON>`` for a persisted event, ``E\\n<frame
JSON>`` for an ephemeral one (`delta`), ``C\\n<control JSON>`` for worker-to-worker control
(`cancel`). The seq sits in a header so a receiving worker orders and de-duplicates without
parsing the frame; the frame text is sent to sockets exactly as published.
"""

from __future__ import annotations

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

    @classmethod
    def event(cls, frame: dict[str, Any]) -> Envelope:
        """An envelope for `frame`, persisted (it has a `seq`) or ephemeral."""
        seq = frame.get("seq")
        return cls(text=orjson.dumps(frame).decode(), seq=seq if isinstance(seq, int) else None)

    @classmethod
    def command(cls, message: dict[str, Any]) -> Envelope:
        return cls(text=orjson.dumps(message).decode(), control=True)

    def encode(self) -> bytes:
        head = "C" if self.control else "E" if self.seq is None else f"E{self.seq}"
        return f"{head}\n{self.text}".encode()

    @classmethod
    def decode(cls, data: bytes | str) -> Envelope:
        raw = data.decode() if isinstance(data, bytes) else data
        head, sep, text = raw.partition("\n")
        if not sep or head[:1] not in ("E", "C"):
            raise ValueError(f"not an envelope: {raw[:40]!r}")
        if head[0] == "C":
            return cls(text=text, control=True)
        return cls(text=text, seq=int(head[1:]) if len(head) > 1 else None)

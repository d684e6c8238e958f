"""A frame's JSON text with holes for the numbers only the statement that writes it knows: its seq and new ids.

The hot path writes a user message and its events in one statement, so the message's id and
the events' seqs are decided by the database while the frames are being written. The caller
builds each frame once, as text in pieces; the statement splices the numbers in (PostgreSQL
concatenates them in SQL), so the text logged for replay is byte for byte the text sent live.
Holes come before any user-supplied text, which therefore sits whole in the last piece.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Hole(StrEnum):
    SEQ = "seq"
    CONVERSATION_ID = "conversation_id"
    MESSAGE_ID = "message_id"


@dataclass(frozen=True, slots=True)
class FrameText:
    parts: tuple[str, ...]
    """The text around the holes: one more piece than there are holes."""
    holes: tuple[Hole, ...]

    def __post_init__(self) -> None:
        assert len(self.parts) == len(self.holes) + 1, "a FrameText has one more part than holes"

    def fill(self, values: Mapping[Hole, int]) -> str:
        pieces = [self.parts[0]]
        for hole, part in zip(self.holes, self.parts[1:], strict=True):
            pieces.append(str(values[hole]))
            pieces.append(part)
        return "".join(pieces)

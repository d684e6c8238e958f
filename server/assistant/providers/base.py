"""What a model provider is: conversation + tool specs in, a stream of text deltas and tool calls out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON Schema of the arguments object."""


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


ProviderEvent = TextDelta | ToolCallRequest


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCallRequest, ...] = field(default=())
    """For an assistant message that asked for tools."""
    tool_call_id: str | None = None
    """For a tool message: which call this is the result of."""
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TurnContext:
    """What a turn knows besides the conversation: when it is, and where the user lives."""

    now: datetime
    """The turn's current instant, timezone-aware (the runtime's clock)."""
    timezone: str = "UTC"
    """The user's IANA zone, in which "tomorrow at 9" is meant."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def local_now(self) -> datetime:
        """`now` on the user's wall clock."""
        return self.now.astimezone(self.zone)


class Provider(Protocol):
    name: str

    def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AsyncIterator[ProviderEvent]:
        """One model step: text deltas, then any tool calls it wants run (all before the step ends)."""
        ...


class ProviderError(Exception):
    """The model server failed (unreachable, timed out, bad answer); the turn ends as `failed`."""

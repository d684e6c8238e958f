"""What a model provider is: conversation + tool specs in, a stream of text deltas and tool calls out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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


class Provider(Protocol):
    name: str

    def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AsyncIterator[ProviderEvent]:
        """One model step: text deltas, then any tool calls it wants run (all before the step ends)."""
        ...


class ProviderError(Exception):
    """The model server failed (unreachable, timed out, bad answer); the turn ends as `failed`."""

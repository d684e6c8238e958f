"""The provider-neutral agent loop: ask the model, run the tools it asks for, repeat until it answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import orjson

from server.assistant.output import clean_event, clean_text
from server.assistant.providers.base import (
    ChatMessage,
    Provider,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    TurnContext,
)

ToolExecutor = Callable[[ToolCallRequest], Awaitable[Any]]
"""Runs one tool call (persisting it and publishing its events) and returns its result."""

DEFAULT_MAX_STEPS = 6


class Agent:
    def __init__(self, provider: Provider, tools: Sequence[ToolSpec], *, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.provider = provider
        self.tools = tuple(tools)
        self.max_steps = max_steps

    async def aclose(self) -> None:
        """Release the provider's resources (an HTTP connection pool), if it holds any."""
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()

    async def run(
        self, messages: Sequence[ChatMessage], execute: ToolExecutor, context: TurnContext
    ) -> AsyncIterator[str]:
        """Yield the reply's text as it streams; tool calls go to `execute` between model steps.

        `context` (the turn's time and the user's zone) goes to every step of the provider.

        Stops after `max_steps` model calls, so a model that keeps calling tools cannot loop forever.
        What the model sends holds no NUL past this point (`server/assistant/output.py`).
        """
        conversation = list(messages)
        for _ in range(self.max_steps):
            text: list[str] = []
            calls: list[ToolCallRequest] = []
            async for event in self._step(conversation, context):
                if isinstance(event, TextDelta):
                    if event.text:
                        text.append(event.text)
                        yield event.text
                else:
                    calls.append(event)
            if not calls:
                return
            conversation.append(ChatMessage(role="assistant", content="".join(text), tool_calls=tuple(calls)))
            for call in calls:
                result = await execute(call)
                conversation.append(
                    ChatMessage(
                        role="tool", content=orjson.dumps(result).decode(), tool_call_id=call.id, name=call.name
                    )
                )
        yield "\n\n(I stopped here: that took more steps than I am allowed.)"

    async def _step(self, conversation: Sequence[ChatMessage], context: TurnContext) -> AsyncIterator[ProviderEvent]:
        """One model step, cleaned: here every provider's text, tool calls and failure reasons enter the turn,
        so the reply, its deltas, its checkpoints, the tool calls (and the results made from their arguments)
        and `turn.end`'s reason are all free of NUL, on every path to storage and to clients."""
        try:
            async for event in self.provider.stream(conversation, self.tools, context):
                yield clean_event(event)
        except ProviderError as exc:
            raise ProviderError(clean_text(str(exc))) from exc

"""A provider that repeats the user's message back in chunks: for benchmarks and protocol tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from server.assistant.providers.base import ChatMessage, ProviderEvent, TextDelta, ToolSpec, TurnContext

CHUNK_CHARS = 8


class EchoProvider:
    name = "echo"

    def __init__(self, *, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay
        """Pause between chunks, to make a turn last long enough to cancel or interrupt it."""

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AsyncIterator[ProviderEvent]:
        last = next((m.content for m in reversed(messages) if m.role == "user"), "")
        reply = f"Echo: {last}"
        for start in range(0, len(reply), CHUNK_CHARS):
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield TextDelta(reply[start : start + CHUNK_CHARS])

"""RulesProvider: the offline, deterministic task agent, speaking the same step protocol as a model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from server.assistant.providers.base import (
    ChatMessage,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    TurnContext,
)
from server.assistant.providers.rules.planner import plan
from server.assistant.providers.rules.replies import chunks, compose
from server.assistant.providers.rules.transcript import CALL_ID_PREFIX, read


class RulesProvider:
    """Understands everyday task commands without a network or an API key.

    Stateless: every step is worked out from `messages` alone (the user's message, this turn's
    tool results, and earlier turns for "it"), so any worker can take any step of any turn.
    """

    name = "rules"

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AsyncIterator[ProviderEvent]:
        transcript = read(messages)
        step = plan(transcript, frozenset(t.name for t in tools), context)
        for offset, (name, arguments) in enumerate(step.calls):
            call_id = f"{CALL_ID_PREFIX}{transcript.next_call_number + offset}"
            yield ToolCallRequest(id=call_id, name=name, arguments=arguments)
        if step.calls:
            return
        for chunk in chunks(compose(step.outcomes, context)):
            yield TextDelta(chunk)

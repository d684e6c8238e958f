"""The agent is where a model's events enter a turn: NUL in any of them comes out as U+FFFD."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from server.assistant.agent import Agent
from server.assistant.output import clean_value
from server.assistant.providers.base import (
    ChatMessage,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    TurnContext,
)

CONTEXT = TurnContext(now=datetime(2026, 12, 3, 10, 30, tzinfo=UTC))


class ScriptedProvider:
    """A provider whose steps are given: each a list of events, or an error to raise after them."""

    name = "scripted"

    def __init__(self, *steps: list[ProviderEvent | Exception]) -> None:
        self.steps = list(steps)

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AsyncIterator[ProviderEvent]:
        for event in self.steps.pop(0):
            if isinstance(event, Exception):
                raise event
            yield event


async def run(agent: Agent, calls: list[ToolCallRequest]) -> str:
    async def execute(call: ToolCallRequest) -> Any:
        calls.append(call)
        return {"status": "ok"}

    return "".join([text async for text in agent.run([ChatMessage(role="user", content="hi")], execute, CONTEXT)])


async def test_text_and_tool_calls_come_out_without_nul() -> None:
    call = ToolCallRequest(id="c\x001", name="add\x00task", arguments={"ti\x00tle": ["a\x00", {"b": "\x00"}], "n": 1})
    agent = Agent(ScriptedProvider([TextDelta("one\x00"), call], [TextDelta("\x00two")]), [])
    calls: list[ToolCallRequest] = []
    assert await run(agent, calls) == "one\ufffd\ufffdtwo"
    arguments = {"ti\ufffdtle": ["a\ufffd", {"b": "\ufffd"}], "n": 1}
    assert calls == [ToolCallRequest(id="c\ufffd1", name="add\ufffdtask", arguments=arguments)]


async def test_a_failure_reason_comes_out_without_nul() -> None:
    agent = Agent(ScriptedProvider([TextDelta("so far"), ProviderError("the server said \x00")]), [])
    with pytest.raises(ProviderError) as failed:
        await run(agent, [])
    assert str(failed.value) == "the server said \ufffd"
    assert isinstance(failed.value.__cause__, ProviderError)  # the original, for the log


def test_values_without_nul_are_left_as_they_are() -> None:
    value = {"title": "plain", "tags": ["a"], "n": None}
    assert clean_value(value) == value

"""The OpenAI provider against a local fake model server: streaming, tool calls, errors, timeouts, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from server.assistant.agent import Agent
from server.assistant.factory import create_agent
from server.assistant.providers.base import ChatMessage, ProviderError, ProviderEvent, TextDelta, ToolCallRequest
from server.assistant.providers.openai import INVALID_JSON_KEY, SYSTEM_PROMPT, OpenAIProvider
from server.assistant.tools import TOOLS, tool_specs
from tests.fakes.openai_server import (
    Disconnect,
    ErrorStatus,
    FakeOpenAIServer,
    Finish,
    Hold,
    Pause,
    Raw,
    Step,
    Stream,
    StreamError,
    Text,
    ToolFragment,
    text_reply,
    tool_reply,
)
from tests.support.live import free_port
from tests.support.settings import make_settings
from tests.support.timing import QUIET, TIMEOUT

API_KEY = "sk-test-0123456789"
ASK = [ChatMessage(role="user", content="add buy milk")]


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def model(fake: FakeOpenAIServer) -> FakeOpenAIServer:
    """The shared fake server with an empty script and no requests seen."""
    fake.reset()
    return fake


@pytest.fixture
async def provider(model: FakeOpenAIServer) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(model="fake-model", base_url=model.base_url, api_key=API_KEY, timeout=TIMEOUT)
    yield provider
    await provider.aclose()


async def collect(provider: OpenAIProvider, messages: Sequence[ChatMessage] = ASK) -> list[ProviderEvent]:
    return [event async for event in provider.stream(messages, tool_specs())]


async def collect_until_error(provider: OpenAIProvider) -> tuple[list[ProviderEvent], ProviderError]:
    events: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as failed:
        async for event in provider.stream(ASK, tool_specs()):
            events.append(event)
    return events, failed.value


def text_of(events: Sequence[ProviderEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, TextDelta))


# --- streaming -----------------------------------------------------------------------------------


async def test_text_streams_as_deltas(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    usage = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}
    reply = text_reply("Hello! What should I add?")
    model.queue(Stream(Raw(usage), *reply.steps))
    events = await collect(provider)
    assert all(isinstance(event, TextDelta) for event in events) and len(events) > 1
    assert text_of(events) == "Hello! What should I add?"

    [request] = model.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.body["model"] == "fake-model" and request.body["stream"] is True
    assert request.messages == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "add buy milk"},
    ]
    assert request.tool_names == list(TOOLS)
    add_task = request.body["tools"][0]
    assert add_task["type"] == "function" and add_task["function"]["parameters"]["required"] == ["title"]


async def test_no_tools_are_sent_when_there_are_none(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("hi"))
    assert text_of([event async for event in provider.stream(ASK, [])]) == "hi"
    assert "tools" not in model.requests[0].body  # OpenAI refuses an empty list


async def test_one_tool_call(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    arguments = {"title": "Buy milk", "description": "2 litres, semi-skimmed"}
    model.queue(tool_reply(("call_1", "add_task", arguments), pieces=5))
    assert await collect(provider) == [ToolCallRequest(id="call_1", name="add_task", arguments=arguments)]


async def test_text_then_tool_call(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(tool_reply(("call_1", "list_tasks", {"status": "pending"}), text="Let me look."))
    events = await collect(provider)
    assert events == [
        TextDelta("Let me look."),
        ToolCallRequest(id="call_1", name="list_tasks", arguments={"status": "pending"}),
    ]


async def test_parallel_tool_calls_interleaved_by_index(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(
        tool_reply(
            ("call_a", "add_task", {"title": "Buy milk"}),
            ("call_b", "add_task", {"title": "Walk the dog", "description": "before 9"}),
            ("call_c", "list_tasks", {}),
            pieces=4,
        )
    )
    assert await collect(provider) == [
        ToolCallRequest(id="call_a", name="add_task", arguments={"title": "Buy milk"}),
        ToolCallRequest(id="call_b", name="add_task", arguments={"title": "Walk the dog", "description": "before 9"}),
        ToolCallRequest(id="call_c", name="list_tasks", arguments={}),
    ]


async def test_calls_sharing_an_index_are_told_apart_by_id(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(
        Stream(
            ToolFragment(0, '{"status": "all"}', id="call_a", name="list_tasks"),
            ToolFragment(0, '{"title": "x"}', id="call_b", name="add_task"),
            Finish("tool_calls"),
        )
    )
    assert [(e.id, e.name) for e in await collect(provider) if isinstance(e, ToolCallRequest)] == [
        ("call_a", "list_tasks"),
        ("call_b", "add_task"),
    ]


async def test_missing_id_and_empty_arguments(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(Stream(ToolFragment(0, "", name="list_tasks"), Finish("stop")))
    [call] = await collect(provider)
    assert isinstance(call, ToolCallRequest)
    assert call.name == "list_tasks" and call.arguments == {} and call.id.startswith("call_")


@pytest.mark.parametrize("arguments", ['{"title": "Buy mi', '["Buy milk"]'], ids=["truncated", "not-an-object"])
async def test_unparsable_arguments_reach_the_tool_which_rejects_them(
    provider: OpenAIProvider, model: FakeOpenAIServer, arguments: str
) -> None:
    model.queue(Stream(ToolFragment(0, arguments, id="call_1", name="add_task"), Finish("length")))
    [call] = await collect(provider)
    assert isinstance(call, ToolCallRequest) and call.arguments == {INVALID_JSON_KEY: arguments}
    # The registry validates before running anything: the model gets `invalid_arguments` naming the key.
    with pytest.raises(ValidationError, match=INVALID_JSON_KEY):
        TOOLS["add_task"][0].model_validate(call.arguments)


async def test_length_keeps_the_text(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("Here is the start of a long", finish="length"))
    assert text_of(await collect(provider)) == "Here is the start of a long"


async def test_content_filter_fails_after_the_partial_text(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("I will", finish="content_filter"))
    events, error = await collect_until_error(provider)
    assert text_of(events) == "I will"
    assert "content filter" in str(error)


# --- the agent loop over the wire ----------------------------------------------------------------


async def test_agent_runs_tools_between_steps(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(
        tool_reply(("call_1", "add_task", {"title": "Buy milk"}), text="On it. "),
        text_reply("Added 'Buy milk'."),
    )
    executed: list[ToolCallRequest] = []
    result = {"task_id": 7, "status": "created", "title": "Buy milk"}

    async def execute(call: ToolCallRequest) -> Any:
        executed.append(call)
        return result

    agent = Agent(provider, tool_specs())
    reply = "".join([text async for text in agent.run(ASK, execute)])

    assert reply == "On it. Added 'Buy milk'."
    assert executed == [ToolCallRequest(id="call_1", name="add_task", arguments={"title": "Buy milk"})]
    first, second = model.requests
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[len(first.messages) :] == [
        {
            "role": "assistant",
            "content": "On it. ",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "add_task", "arguments": '{"title":"Buy milk"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": orjson.dumps(result).decode()},
    ]


async def test_history_with_a_tool_request_and_no_text(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    call = ToolCallRequest(id="call_9", name="list_tasks", arguments={})
    history = [
        *ASK,
        ChatMessage(role="assistant", content="", tool_calls=(call,)),
        ChatMessage(role="tool", content="[]", tool_call_id="call_9", name="list_tasks"),
        ChatMessage(role="assistant", content="You have no tasks."),
    ]
    model.queue(text_reply("ok"))
    await collect(provider, history)
    assert model.requests[0].messages[2:] == [
        {
            "role": "assistant",
            "content": None,  # the API's null content next to tool calls
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "list_tasks", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "[]"},
        {"role": "assistant", "content": "You have no tasks."},
    ]


# --- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "attempts"),
    [
        (500, "failed (500)", 2),
        (503, "failed (503)", 2),
        (429, "rate limiting", 2),
        (401, "rejected the API key (401)", 1),
        (404, "no model 'fake-model' (404)", 1),
        (400, "refused the request (400): Incorrect API key provided: ***", 1),
    ],
    ids=["500", "503", "429", "401", "404", "400"],
)
async def test_error_status_becomes_provider_error(
    provider: OpenAIProvider, model: FakeOpenAIServer, status: int, reason: str, attempts: int
) -> None:
    # Servers echo keys in some messages (OpenAI's 401 does): the reason must never carry it.
    error = ErrorStatus(status, f"Incorrect API key provided: {API_KEY}")
    model.queue(error, error)
    events, failed = await collect_until_error(provider)
    assert events == []
    assert reason in str(failed) and API_KEY not in str(failed)
    assert len(model.requests) == attempts  # one retry for 429 and 5xx, none for the rest


async def test_a_failed_attempt_is_retried_once(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(ErrorStatus(502), text_reply("second time lucky"))
    assert text_of(await collect(provider)) == "second time lucky"
    assert len(model.requests) == 2


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (StreamError("The server is overloaded"), "reported an error: The server is overloaded"),
        (Disconnect(), "closed the connection in the middle of the reply"),
    ],
    ids=["error-event", "disconnect"],
)
async def test_error_mid_stream_after_partial_text(
    provider: OpenAIProvider, model: FakeOpenAIServer, failure: Step, reason: str
) -> None:
    model.queue(Stream(Text("Adding "), Text("it"), failure))
    events, failed = await collect_until_error(provider)
    assert text_of(events) == "Adding it"
    assert reason in str(failed)
    assert len(model.requests) == 1  # nothing is retried once text has streamed


async def test_malformed_chunk(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(Stream(Text("Hi"), Raw(b"{not json")))
    events, failed = await collect_until_error(provider)
    assert text_of(events) == "Hi" and str(failed) == "The model server sent a malformed response"


async def test_unreachable_server(model: FakeOpenAIServer) -> None:
    provider = OpenAIProvider(model="m", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=TIMEOUT, max_retries=0)
    try:
        _, failed = await collect_until_error(provider)
    finally:
        await provider.aclose()
    assert str(failed) == "Could not reach the model server"


@pytest.fixture
async def impatient(model: FakeOpenAIServer) -> AsyncIterator[OpenAIProvider]:
    """A provider that gives up after QUIET seconds of silence."""
    provider = OpenAIProvider(model="fake-model", base_url=model.base_url, timeout=QUIET)
    yield provider
    await provider.aclose()


async def test_without_a_key_a_placeholder_is_sent(impatient: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("hi"))
    await collect(impatient)
    assert model.requests[0].headers["authorization"] == "Bearer not-needed"  # local servers ignore it


async def test_timeout_before_the_first_byte(impatient: OpenAIProvider, model: FakeOpenAIServer) -> None:
    silent = Stream(Pause(TIMEOUT), Text("too late"))
    model.queue(silent, silent)
    events, failed = await collect_until_error(impatient)
    assert events == [] and f"did not answer within {QUIET:g}s" in str(failed)
    assert len(model.requests) == 2  # a timeout before any text is retried once
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)  # the abandoned requests were closed


async def test_timeout_between_chunks(impatient: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(Stream(Text("Let me "), Pause(TIMEOUT), Text("think")))
    events, failed = await collect_until_error(impatient)
    assert text_of(events) == "Let me " and "did not answer" in str(failed)
    assert len(model.requests) == 1


# --- cancellation --------------------------------------------------------------------------------


async def test_cancel_closes_the_stream(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(Stream(Text("Thinking"), Hold()))
    received: asyncio.Queue[ProviderEvent] = asyncio.Queue()

    async def consume() -> None:
        async for event in provider.stream(ASK, tool_specs()):
            received.put_nowait(event)

    task = asyncio.create_task(consume())
    # The first delta arrives while the server still holds the stream: text is passed on as it comes.
    assert await asyncio.wait_for(received.get(), TIMEOUT) == TextDelta("Thinking")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)
    assert model.disconnects == 1 and received.empty()


# --- configuration -------------------------------------------------------------------------------


def test_openai_provider_needs_a_model() -> None:
    settings = make_settings(assistant_provider="openai", llm_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match="LLM_MODEL"):
        create_agent(settings)


def test_openai_itself_needs_a_key() -> None:
    with pytest.raises(ValueError, match="LLM_API_KEY"):
        create_agent(make_settings(assistant_provider="openai", llm_model="gpt-4o-mini"))


@pytest.mark.parametrize("choice", ["auto", "openai"])
async def test_factory_picks_the_openai_provider(choice: str) -> None:
    settings = make_settings(
        assistant_provider=choice, llm_base_url="http://127.0.0.1:9/v1", llm_model="llama3.1", llm_timeout=5
    )
    provider = create_agent(settings).provider
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "openai" and provider.model == "llama3.1" and provider.timeout == 5
    await provider.aclose()

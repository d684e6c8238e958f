"""The OpenAI provider against a local fake model server: streaming, tool calls, errors, retries, timeouts, cancel."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from server.assistant.agent import Agent
from server.assistant.factory import create_agent
from server.assistant.providers.base import (
    ChatMessage,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    TurnContext,
)
from server.assistant.providers.openai import (
    INVALID_JSON_KEY,
    SYSTEM_PROMPT,
    UNFINISHED,
    OpenAIProvider,
    clock_line,
)
from server.assistant.providers.retry import JITTER, RetryPolicy
from server.assistant.tools import TOOLS, tool_specs
from tests.fakes.openai_server import (
    Disconnect,
    ErrorStatus,
    FakeOpenAIServer,
    Finish,
    Flush,
    Hold,
    Pause,
    Raw,
    Response,
    Step,
    Stream,
    StreamError,
    Text,
    ToolFragment,
    Truncate,
    text_reply,
    tool_reply,
)
from tests.support.live import free_port
from tests.support.settings import make_settings
from tests.support.timing import QUIET, TIMEOUT, wait_until

API_KEY = "sk-test-0123456789"
ASK = [ChatMessage(role="user", content="add buy milk")]
CONTEXT = TurnContext(now=datetime(2026, 12, 3, 9, 30, 15, tzinfo=UTC), timezone="Europe/Berlin")
"""A Thursday morning in Berlin (UTC+1)."""
RETRIES = 2
BACKOFF = 0.5


class Naps:
    """The provider's sleep: records each backoff and returns at once, so no test waits for one."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)
        await asyncio.sleep(0)


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
def naps() -> Naps:
    return Naps()


def make_provider(model: FakeOpenAIServer, naps: Naps, **overrides: Any) -> OpenAIProvider:
    options: dict[str, Any] = {
        "model": "fake-model",
        "base_url": model.base_url,
        "api_key": API_KEY,
        "timeout": TIMEOUT,
        "idle_timeout": TIMEOUT,
        "retry": RetryPolicy(max_retries=RETRIES, base_delay=BACKOFF, rng=random.Random(7)),
        "sleep": naps,
    }
    options.update(overrides)
    return OpenAIProvider(**options)


@pytest.fixture
async def provider(model: FakeOpenAIServer, naps: Naps) -> AsyncIterator[OpenAIProvider]:
    provider = make_provider(model, naps)
    yield provider
    await provider.aclose()


@pytest.fixture
async def impatient(model: FakeOpenAIServer, naps: Naps) -> AsyncIterator[OpenAIProvider]:
    """A provider that gives up after QUIET seconds of silence: for the first chunk, and between chunks."""
    provider = make_provider(model, naps, api_key=None, timeout=QUIET, idle_timeout=QUIET)
    yield provider
    await provider.aclose()


@pytest.fixture
async def idle(model: FakeOpenAIServer, naps: Naps) -> AsyncIterator[OpenAIProvider]:
    """A provider with all the time in the world for the first chunk, and QUIET seconds between chunks."""
    provider = make_provider(model, naps, idle_timeout=QUIET)
    yield provider
    await provider.aclose()


async def collect(provider: OpenAIProvider, messages: Sequence[ChatMessage] = ASK) -> list[ProviderEvent]:
    return [event async for event in provider.stream(messages, tool_specs(), CONTEXT)]


async def collect_until_error(provider: OpenAIProvider) -> tuple[list[ProviderEvent], ProviderError]:
    events: list[ProviderEvent] = []
    with pytest.raises(ProviderError) as failed:
        async for event in provider.stream(ASK, tool_specs(), CONTEXT):
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
        {"role": "system", "content": clock_line(CONTEXT)},
        {"role": "user", "content": "add buy milk"},
    ]
    assert request.tool_names == list(TOOLS)
    add_task = request.body["tools"][0]
    assert add_task["type"] == "function" and add_task["function"]["parameters"]["required"] == ["title"]
    # The richer schemas reach the model: the schedule fields, the filters and sorts.
    properties = {
        tool["function"]["name"]: tool["function"]["parameters"]["properties"] for tool in request.body["tools"]
    }
    assert {"format": "date-time", "type": "string"} in properties["add_task"]["due_at"]["anyOf"]
    assert {"priority", "tags", "remind_at", "recurrence"} <= set(properties["add_task"])
    assert properties["list_tasks"]["sort"]["enum"] == ["created", "due", "priority", "title"]
    assert {"snooze_minutes", "dismiss_reminder", "add_tags", "remove_tags"} <= set(properties["update_task"])


def test_the_model_is_told_the_users_local_time_and_zone() -> None:
    """One system line, so that a model can turn "tomorrow at 5pm" into an instant with the right offset."""
    line = clock_line(CONTEXT)
    assert "Europe/Berlin" in line and "Thursday 2026-12-03T10:30:00+01:00" in line
    summer = TurnContext(now=datetime(2026, 7, 1, 22, 0, tzinfo=UTC), timezone="America/New_York")
    assert "America/New_York" in clock_line(summer) and "Wednesday 2026-07-01T18:00:00-04:00" in clock_line(summer)


async def test_no_tools_are_sent_when_there_are_none(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("hi"))
    assert text_of([event async for event in provider.stream(ASK, [], CONTEXT)]) == "hi"
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
    reply = "".join([text async for text in agent.run(ASK, execute, CONTEXT)])

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
    assert model.requests[0].messages[3:] == [
        {
            "role": "assistant",
            "content": None,  # the API's null content next to tool calls
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "list_tasks", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "[]"},
        {"role": "assistant", "content": "You have no tasks."},
    ]


# --- failures: statuses and retries ---------------------------------------------------------------


STATUSES = [
    (500, "failed (500)", True),
    (502, "failed (502)", True),
    (503, "failed (503)", True),
    (429, "rate limiting", True),
    (408, "refused the request (408)", True),
    (409, "refused the request (409)", True),
    (400, "refused the request (400): Incorrect API key provided: ***", False),
    (401, "rejected the API key (401)", False),
    (403, "refused access (403)", False),
    (404, "no model 'fake-model' (404)", False),
    (422, "refused the request (422)", False),
]


@pytest.mark.parametrize(("status", "reason", "retried"), STATUSES, ids=[str(case[0]) for case in STATUSES])
async def test_error_status_becomes_provider_error(
    provider: OpenAIProvider,
    model: FakeOpenAIServer,
    naps: Naps,
    caplog: pytest.LogCaptureFixture,
    status: int,
    reason: str,
    retried: bool,
) -> None:
    # Servers echo keys in some messages (OpenAI's 401 does): neither the reason nor the log may carry it.
    error = ErrorStatus(status, f"Incorrect API key provided: {API_KEY}")
    model.queue(*[error] * (RETRIES + 1), text_reply("too late"))
    with caplog.at_level(logging.INFO):
        events, failed = await collect_until_error(provider)
    assert events == []
    assert reason in str(failed) and API_KEY not in str(failed)
    assert API_KEY not in caplog.text and reason.split(":")[0] in caplog.text
    # A 4xx other than 408, 409 and 429 fails the same way every time: never sent again.
    assert len(model.requests) == (RETRIES + 1 if retried else 1)
    assert len(naps.taken) == (RETRIES if retried else 0)


async def test_retries_back_off_with_jitter(model: FakeOpenAIServer, naps: Naps) -> None:
    retries = 4
    provider = make_provider(model, naps, retry=RetryPolicy(max_retries=retries, base_delay=BACKOFF))
    model.queue(*[ErrorStatus(503)] * retries, text_reply("fourth time lucky"))
    try:
        assert text_of(await collect(provider)) == "fourth time lucky"
    finally:
        await provider.aclose()
    assert len(model.requests) == retries + 1
    # Each wait doubles, less up to a quarter at random: never shorter than the one before, never in lockstep.
    for n, taken in enumerate(naps.taken):
        assert BACKOFF * 2**n * (1 - JITTER) <= taken <= BACKOFF * 2**n
    assert all(later > earlier for earlier, later in zip(naps.taken, naps.taken[1:], strict=False))
    assert len(set(naps.taken)) == retries


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5)],
    ids=["seconds", "milliseconds"],
)
async def test_retry_after_is_honoured(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps, headers: dict[str, str], wait: float
) -> None:
    model.queue(ErrorStatus(429, "slow down", headers=headers), text_reply("Added it."))
    assert text_of(await collect(provider)) == "Added it."
    assert len(model.requests) == 2
    assert naps.taken == [wait]  # the server's wait, longer than the first backoff (at most BACKOFF)


async def test_a_retry_after_does_not_lengthen_the_next_backoff(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(ErrorStatus(429, headers={"retry-after": "2"}), ErrorStatus(502), text_reply("ok"))
    assert text_of(await collect(provider)) == "ok"
    after_429, after_502 = naps.taken
    assert after_429 == 2.0 and BACKOFF * (1 - JITTER) <= after_502 <= BACKOFF  # the first backoff, not the second


async def test_a_retry_after_shorter_than_the_backoff_waits_the_backoff(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(ErrorStatus(503, headers={"retry-after": "0"}), text_reply("ok"))
    assert text_of(await collect(provider)) == "ok"
    [taken] = naps.taken
    assert BACKOFF * (1 - JITTER) <= taken <= BACKOFF  # "0" does not make us hammer the server


async def test_a_long_retry_after_is_not_waited_for(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(ErrorStatus(429, headers={"retry-after": "3600"}), text_reply("an hour later"))
    events, failed = await collect_until_error(provider)
    assert events == [] and "rate limiting" in str(failed)
    assert len(model.requests) == 1 and naps.taken == []


async def test_unreachable_server(model: FakeOpenAIServer, naps: Naps) -> None:
    provider = make_provider(model, naps, base_url=f"http://127.0.0.1:{free_port()}/v1")
    try:
        _, failed = await collect_until_error(provider)
    finally:
        await provider.aclose()
    assert str(failed) == "Could not reach the model server"
    assert len(naps.taken) == RETRIES


# --- failures: the stream -------------------------------------------------------------------------

BEFORE_ANY_TEXT: dict[str, Response] = {
    "429-retry-after": ErrorStatus(429, headers={"retry-after": "1"}),
    "drop-before-first-token": Stream(Disconnect()),
    "cut-before-first-token": Stream(Flush(), Truncate()),
    "done-before-first-token": Stream(),  # the role chunk, then [DONE]: no finish reason
    "not-json": Stream(Raw(b"{not json")),
    "not-a-chunk": Stream(Raw({"choices": "none"})),
    "error-event": Stream(StreamError("The server is overloaded")),
    "tool-call-cut": Stream(ToolFragment(0, '{"title": "Bu', id="call_0", name="add_task"), Truncate()),
}


@pytest.mark.parametrize("failure", BEFORE_ANY_TEXT.values(), ids=BEFORE_ANY_TEXT.keys())
async def test_a_failure_before_any_text_is_retried(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps, failure: Response
) -> None:
    # Nothing of the first attempt reached the user (a cut tool call is never yielded): try again.
    model.queue(failure)
    model.queue(tool_reply(("call_1", "add_task", {"title": "Buy milk"}), text="On it."))
    events = await collect(provider)
    assert events == [
        TextDelta("On it."),
        ToolCallRequest(id="call_1", name="add_task", arguments={"title": "Buy milk"}),
    ]
    assert len(model.requests) == 2 and len(naps.taken) == 1
    assert model.requests[0].body == model.requests[1].body  # a retry is the same request


AFTER_TEXT: dict[str, tuple[Step | None, str]] = {
    "no-finish-reason": (None, UNFINISHED),  # then [DONE]
    "cut": (Truncate(), UNFINISHED),
    "drop": (Disconnect(), "closed the connection in the middle of the reply"),
    "error-event": (StreamError("The server is overloaded"), "reported an error: The server is overloaded"),
    "not-json": (Raw(b"{not json"), "sent a malformed response"),
    "no-choices": (Raw({"object": "chat.completion.chunk"}), "sent a malformed response"),
    "choices-not-a-list": (Raw({"choices": "none"}), "sent a malformed response"),
    "text-not-a-string": (Raw({"choices": [{"index": 0, "delta": {"content": 5}}]}), "sent a malformed response"),
    "not-an-object": (Raw(b"[1, 2]"), "sent a malformed response"),
}


@pytest.mark.parametrize(("failure", "reason"), AFTER_TEXT.values(), ids=AFTER_TEXT.keys())
async def test_a_failure_after_text_keeps_it_and_is_not_retried(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps, failure: Step | None, reason: str
) -> None:
    # The user has seen "Adding it": a second attempt would say something else after it. Fail honestly.
    model.queue(Stream(Text("Adding "), Text("it"), *([failure] if failure else [])), text_reply("never sent"))
    events, failed = await collect_until_error(provider)
    assert text_of(events) == "Adding it"
    assert reason in str(failed)
    assert len(model.requests) == 1 and naps.taken == []


async def test_an_unfinished_stream_is_a_failure_after_every_retry(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(*[Stream(ToolFragment(0, "{}", id="call_0", name="list_tasks"))] * (RETRIES + 1))
    events, failed = await collect_until_error(provider)
    assert events == [] and str(failed) == UNFINISHED  # never half a tool call
    assert len(model.requests) == RETRIES + 1


async def test_an_error_event_naming_a_client_error_is_not_retried(
    provider: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(Stream(StreamError("This model's maximum context length is 8192 tokens", code=400)), text_reply("x"))
    _, failed = await collect_until_error(provider)
    assert "maximum context length" in str(failed) and len(model.requests) == 1


@pytest.mark.parametrize(
    "after", [Disconnect(), Raw(b"{not json"), Truncate(), Pause(TIMEOUT)], ids=["drop", "not-json", "cut", "stall"]
)
async def test_what_follows_a_finished_reply_cannot_spoil_it(
    idle: OpenAIProvider, model: FakeOpenAIServer, after: Step
) -> None:
    model.queue(Stream(Text("Done."), Finish("stop"), after))
    assert text_of(await collect(idle)) == "Done."
    assert len(model.requests) == 1


# --- failures: timeouts ---------------------------------------------------------------------------


async def test_timeout_before_the_first_byte(impatient: OpenAIProvider, model: FakeOpenAIServer) -> None:
    silent = Stream(Pause(TIMEOUT), Text("too late"))
    model.queue(*[silent] * (RETRIES + 1))
    events, failed = await collect_until_error(impatient)
    assert events == [] and f"did not answer within {QUIET:g}s" in str(failed)
    assert len(model.requests) == RETRIES + 1  # a timeout before any text is retried
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)  # the abandoned requests were closed


async def test_without_a_key_a_placeholder_is_sent(impatient: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(text_reply("hi"))
    await collect(impatient)
    assert model.requests[0].headers["authorization"] == "Bearer not-needed"  # local servers ignore it


async def test_a_stall_between_chunks_fails_after_the_idle_timeout(
    idle: OpenAIProvider, model: FakeOpenAIServer
) -> None:
    model.queue(Stream(Text("Let me "), Pause(TIMEOUT), Text("think"), Finish("stop")))
    started = time.monotonic()
    events, failed = await collect_until_error(idle)
    assert time.monotonic() - started < TIMEOUT / 2  # the idle timeout, not the first-byte one
    assert text_of(events) == "Let me " and str(failed) == f"The model server stopped sending for {QUIET:g}s"
    assert len(model.requests) == 1
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)


async def test_a_stall_before_the_first_token_is_retried(
    idle: OpenAIProvider, model: FakeOpenAIServer, naps: Naps
) -> None:
    model.queue(Stream(Flush(), Pause(TIMEOUT), Text("late")), text_reply("on time"))
    assert text_of(await collect(idle)) == "on time"
    assert len(model.requests) == 2 and len(naps.taken) == 1
    await asyncio.wait_for(model.disconnected.wait(), TIMEOUT)  # the stalled stream was closed


async def test_the_first_chunk_may_take_longer_than_the_idle_timeout(
    idle: OpenAIProvider, model: FakeOpenAIServer
) -> None:
    # A local model reads the whole prompt before its first token: that wait is LLM_TIMEOUT's, not the idle one's.
    model.queue(Stream(Pause(QUIET * 3), *text_reply("Thought about it.").steps))
    assert text_of(await collect(idle)) == "Thought about it."
    assert len(model.requests) == 1


async def test_cancel_during_a_backoff_stops_at_once(model: FakeOpenAIServer) -> None:
    provider = make_provider(model, Naps(), sleep=asyncio.sleep, retry=RetryPolicy(base_delay=TIMEOUT * 10))
    model.queue(ErrorStatus(503), text_reply("much later"))
    task = asyncio.create_task(collect(provider))
    try:
        await wait_until(lambda: len(model.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)
    finally:
        await provider.aclose()
    assert len(model.requests) == 1


# --- cancellation --------------------------------------------------------------------------------


async def test_cancel_closes_the_stream(provider: OpenAIProvider, model: FakeOpenAIServer) -> None:
    model.queue(Stream(Text("Thinking"), Hold()))
    received: asyncio.Queue[ProviderEvent] = asyncio.Queue()

    async def consume() -> None:
        async for event in provider.stream(ASK, tool_specs(), CONTEXT):
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
        assistant_provider=choice,
        llm_base_url="http://127.0.0.1:9/v1",
        llm_model="llama3.1",
        llm_timeout=5,
        llm_idle_timeout=2,
        llm_max_retries=4,
        llm_retry_backoff=0.25,
        llm_retry_backoff_max=3,
    )
    provider = create_agent(settings).provider
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == "openai" and provider.model == "llama3.1"
    assert (provider.timeout, provider.idle_timeout) == (5, 2)
    assert (provider.retry.max_retries, provider.retry.base_delay, provider.retry.max_delay) == (4, 0.25, 3)
    await provider.aclose()

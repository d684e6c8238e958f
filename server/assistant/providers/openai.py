"""The assistant on any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama.cpp), with tools.

A reply counts only when its stream says it is finished (a `finish_reason`); a stream that is
cut, goes silent or carries a chunk that is not a chunk is a failure. A failed attempt is tried
again (bounded, with backoff) only while nothing of it has reached the user: once text has
streamed, the turn fails honestly and keeps that text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from server.assistant.providers.base import (
    ChatMessage,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
    TurnContext,
)
from server.assistant.providers.retry import RetryPolicy, parse_retry_after, retryable_status
from server.logs import Throttled
from server.settings import Settings

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You are a todo-list assistant. You manage the user's todo list only through the tools you are given: "
    "add, list, complete, update and delete tasks. Be concise: one or two sentences. "
    "Never invent a task id: when you need one, call list_tasks first and use the ids it returns. "
    "If a tool returns an error, explain it briefly instead of pretending it worked."
)
OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_API_KEY = "not-needed"
"""Local servers ignore the key, but the SDK insists on one."""
DEFAULT_IDLE_TIMEOUT = 10.0
MAX_CONNECT_TIMEOUT = 10.0
INVALID_JSON_KEY = "invalid_json_arguments"
"""Carries unparsable arguments; no tool accepts it, so the model gets an `invalid_arguments` result."""
MAX_REASON_CHARS = 200
UNFINISHED = "The model server ended the reply before finishing it"

Sleep = Callable[[float], Awaitable[None]]


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.model = model
        self.timeout = timeout
        """To connect (at most MAX_CONNECT_TIMEOUT), for the response headers, and for its first chunk."""
        self.idle_timeout = idle_timeout
        """Between two chunks. TURN_TIMEOUT bounds the whole turn: a model may stream for minutes."""
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._api_key = api_key or ""
        self._failing = Throttled(logger)
        """A model server that is down fails every turn: a few lines per outage, not one per attempt."""
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            # The waits above are enforced per step in `_attempt`; the transport's own timeouts are a backstop.
            timeout=openai.Timeout(max(timeout, idle_timeout), connect=min(timeout, MAX_CONNECT_TIMEOUT)),
            # The SDK retries only the request, blind to what the stream did; `stream` retries whole attempts.
            max_retries=0,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIProvider:
        """Build from LLM_* settings; a missing model or OpenAI key fails at start-up, not on the first message."""
        if not settings.llm_model:
            raise ValueError("LLM_MODEL must be set to use the openai assistant provider (e.g. gpt-4o-mini, llama3.1)")
        api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        base_url = settings.llm_base_url or OPENAI_BASE_URL
        if base_url.rstrip("/") == OPENAI_BASE_URL and not api_key:
            raise ValueError("LLM_API_KEY must be set to use api.openai.com (or set LLM_BASE_URL to a local server)")
        return cls(
            model=settings.llm_model,
            base_url=base_url,
            api_key=api_key,
            timeout=settings.llm_timeout,
            idle_timeout=settings.llm_idle_timeout,
            retry=RetryPolicy(
                max_retries=settings.llm_max_retries,
                base_delay=settings.llm_retry_backoff,
                max_delay=settings.llm_retry_backoff_max,
            ),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], context: TurnContext
    ) -> AsyncIterator[ProviderEvent]:
        """One model step: text deltas as they arrive, then the tool calls, once the stream has finished.

        A transient failure (connection, timeout, 408/409/429/5xx, a cut, silent or malformed
        stream) is retried while no text of this step has been yielded; tool calls are yielded
        only after a finished stream, so none has run. Every other failure, and the last one,
        becomes a `ProviderError` with a short reason. If the consuming task is cancelled, the
        attempt's `finally` closes the HTTP response, so the server sees the disconnect and stops.
        """
        request = _Request(to_openai_messages(messages, context), [to_openai_tool(spec) for spec in tools])
        retries = self.retry.start()
        while True:
            streamed = False
            try:
                async with contextlib.aclosing(self._attempt(request)) as events:
                    async for event in events:
                        streamed = streamed or isinstance(event, TextDelta)
                        yield event
                self._failing.recovered("Model server answers again")
                return
            except AttemptFailed as failure:
                delay = None if streamed or not failure.retryable else retries.next_delay(failure.retry_after)
                if delay is None:
                    why = "text had streamed" if streamed else "gave up" if failure.retryable else "not retryable"
                    attempt = retries.made + 1
                    self._failing.failure(
                        "Model server error: %s (%s; %s, attempt %d)", failure, failure.kind, why, attempt
                    )
                    raise ProviderError(str(failure)) from failure
                self._failing.failure(
                    "Model server error: %s (%s); retry %d of %d in %.2fs",
                    failure,
                    failure.kind,
                    retries.made,
                    self.retry.max_retries,
                    delay,
                )
                await self._sleep(delay)

    async def _attempt(self, request: _Request) -> AsyncGenerator[ProviderEvent]:
        """One request and its stream, to the end; every way it can fail raises `AttemptFailed`."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.chat.completions.create(
                    model=self.model,
                    messages=request.messages,
                    tools=request.tools or openai.omit,  # OpenAI refuses an empty list
                    stream=True,
                )
        except TimeoutError as exc:
            raise self._failure(exc) from exc
        except openai.APIError as exc:
            raise self._failure(exc) from exc
        calls = ToolCallAccumulator()
        finish_reason: str | None = None
        started = False  # the first chunk may take `timeout` (a model reads the prompt first); then `idle_timeout`
        chunks = aiter(response)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout if started else self.timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                started = True
                parsed = parse_chunk(chunk)
                for text in parsed.read(calls):
                    yield TextDelta(text)
                finish_reason = parsed.finish_reason or finish_reason
        except (TimeoutError, openai.APIError, ValueError) as exc:  # ValueError: an event that is not a chunk
            if finish_reason is None:
                raise self._failure(exc, streaming=True, idle=started) from exc
            # The reply is whole; only what follows it ([DONE], a usage chunk) went wrong.
            logger.info("Model server failed after the reply had finished (%s); keeping the reply", type(exc).__name__)
        finally:
            await response.close()
        if finish_reason is None:
            raise AttemptFailed(UNFINISHED, kind="no finish_reason", retryable=True)
        if finish_reason == "content_filter":
            raise AttemptFailed("The model server's content filter stopped the reply", kind="content_filter")
        if finish_reason == "length":
            # The reply is cut at the model's token limit: keep what came. A call cut mid-arguments
            # fails to parse and comes back to the model as an `invalid_arguments` result.
            logger.info("The model stopped at its token limit (finish_reason=length)")
        for call in calls.finish():
            yield call

    def _failure(self, exc: Exception, *, streaming: bool = False, idle: bool = False) -> AttemptFailed:
        """`streaming`: the response had begun; `idle`: its first chunk had come."""
        if isinstance(exc, TimeoutError):  # one of our own waits in `_attempt`
            reason = (
                f"The model server stopped sending for {self.idle_timeout:g}s"
                if idle
                else f"The model server did not answer within {self.timeout:g}s"
            )
            return AttemptFailed(reason, kind="timeout", retryable=True)
        reason = describe_error(exc, model=self.model, timeout=self.timeout, mid_stream=streaming)
        retry_after = None
        if isinstance(exc, openai.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers)
        return AttemptFailed(
            _scrub(reason, self._api_key), kind=type(exc).__name__, retryable=transient(exc), retry_after=retry_after
        )


@dataclass(frozen=True)
class _Request:
    """What every attempt of one model call sends: the same body, so a server can tell a retry."""

    messages: list[ChatCompletionMessageParam]
    tools: list[ChatCompletionFunctionToolParam]


class AttemptFailed(Exception):
    """One attempt at a model call failed; `str()` is the reason for the user, without secrets."""

    def __init__(self, reason: str, *, kind: str, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        """What failed, for the log: the exception's class, or what the stream lacked."""
        self.retryable = retryable
        self.retry_after = retry_after


# --- messages and tools out ------------------------------------------------------------------


def to_openai_messages(messages: Sequence[ChatMessage], context: TurnContext) -> list[ChatCompletionMessageParam]:
    """Our system prompt and the turn's time first, then the conversation in Chat Completions' shape."""
    result: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "system", "content": clock_line(context)},
    ]
    result.extend(to_openai_message(message) for message in messages)
    return result


def clock_line(context: TurnContext) -> str:
    """The user's local time and zone, so that a model can resolve "tomorrow at 5pm" to an instant with an offset.

    Its own message, after the fixed prompt: the prompt stays the same from turn to turn (servers cache it).
    """
    local = context.local_now.replace(second=0, microsecond=0)
    return (
        f"The user's time zone is {context.timezone}; it is now {local:%A} {local.isoformat()} there. "
        "Read dates and times the user gives in that zone, and pass them to the tools with its UTC offset."
    )


def to_openai_message(message: ChatMessage) -> ChatCompletionMessageParam:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "", "content": message.content}
    if message.role == "assistant":
        if not message.tool_calls:
            return {"role": "assistant", "content": message.content}
        # `content` may be null next to tool calls (the API reference's "required unless tool_calls").
        return {
            "role": "assistant",
            "content": message.content or None,
            "tool_calls": [_tool_call_param(call) for call in message.tool_calls],
        }
    if message.role == "system":
        return {"role": "system", "content": message.content}
    return {"role": "user", "content": message.content}


def _tool_call_param(call: ToolCallRequest) -> ChatCompletionMessageFunctionToolCallParam:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
    }


def to_openai_tool(spec: ToolSpec) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters},
    }


# --- the stream in ---------------------------------------------------------------------------


class _Wire(BaseModel):
    # Read from the SDK's chunk objects, which it builds without checking them: a field of the
    # wrong type (text that is a number, choices that are a string) must fail here, not be skipped.
    model_config = ConfigDict(from_attributes=True)


class FunctionFragment(_Wire):
    name: str | None = None
    arguments: str | None = None


class ToolFragment(_Wire):
    index: int | None = None
    id: str | None = None
    function: FunctionFragment | None = None


class Delta(_Wire):
    content: str | None = None
    tool_calls: list[ToolFragment] | None = None


class Choice(_Wire):
    index: int | None = None
    """Missing on some servers; we never ask for `n` > 1, so it means choice 0."""
    delta: Delta | None = None
    finish_reason: str | None = None


class Chunk(_Wire):
    """The part of a `chat.completion.chunk` we read. Only choice 0 counts (we never ask for `n` > 1)."""

    choices: list[Choice]

    @property
    def first_choices(self) -> list[Choice]:
        return [choice for choice in self.choices if not choice.index]

    @property
    def finish_reason(self) -> str | None:
        return next((choice.finish_reason for choice in self.first_choices if choice.finish_reason), None)

    def read(self, calls: ToolCallAccumulator) -> list[str]:
        """The text of this chunk; its tool-call fragments go to `calls`.

        Chunks without choices (usage, Azure's prompt filter results) carry nothing for us.
        """
        texts: list[str] = []
        for choice in self.first_choices:
            if choice.delta is None:
                continue
            if choice.delta.content:
                texts.append(choice.delta.content)
            for fragment in choice.delta.tool_calls or ():
                calls.add(fragment)
        return texts


class MalformedChunk(ValueError):
    """An event that is JSON but not a chunk."""


def parse_chunk(chunk: object) -> Chunk:
    try:
        return Chunk.model_validate(chunk)
    except ValidationError as exc:
        raise MalformedChunk(f"not a chat.completion.chunk: {exc.error_count()} invalid field(s)") from None


@dataclass
class _PartialCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Reassembles streamed tool calls: `id` and `name` come in a call's first fragment, `arguments` in pieces.

    Fragments of parallel calls interleave and are told apart by `index`. Some servers reuse
    index 0 for every call; a fragment with a new `id` at a taken index therefore starts a new call.
    """

    def __init__(self) -> None:
        self._calls: list[_PartialCall] = []
        self._by_index: dict[int, _PartialCall] = {}

    def add(self, fragment: ToolFragment) -> None:
        index = fragment.index if isinstance(fragment.index, int) else len(self._calls)
        call = self._by_index.get(index)
        if call is None or (fragment.id and call.id and fragment.id != call.id):
            call = self._by_index[index] = _PartialCall()
            self._calls.append(call)
        if fragment.id and not call.id:
            call.id = fragment.id
        function = fragment.function
        if function is not None:
            if function.name and not call.name:
                call.name = function.name
            if function.arguments:
                call.arguments.append(function.arguments)

    def finish(self) -> list[ToolCallRequest]:
        return [
            ToolCallRequest(
                id=call.id or f"call_{secrets.token_hex(8)}",  # some local servers send no ids
                name=call.name or "",
                arguments=parse_arguments("".join(call.arguments)),
            )
            for call in self._calls
        ]


def parse_arguments(text: str) -> dict[str, Any]:
    """The arguments object; anything else becomes a dict every tool rejects, naming the problem."""
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {INVALID_JSON_KEY: text[:MAX_REASON_CHARS]}
    if not isinstance(value, dict):
        return {INVALID_JSON_KEY: text[:MAX_REASON_CHARS]}
    return value


# --- errors ----------------------------------------------------------------------------------


def describe_error(exc: Exception, *, model: str, timeout: float, mid_stream: bool = False) -> str:
    """A short reason for the user and the log: what failed, never a traceback."""
    if isinstance(exc, openai.APITimeoutError):
        return f"The model server did not answer within {timeout:g}s"
    if isinstance(exc, openai.APIConnectionError):
        if mid_stream:
            return "The model server closed the connection in the middle of the reply"
        return "Could not reach the model server"
    if isinstance(exc, openai.AuthenticationError):
        return "The model server rejected the API key (401)"
    if isinstance(exc, openai.PermissionDeniedError):
        return "The model server refused access (403)"
    if isinstance(exc, openai.NotFoundError):
        return f"The model server has no model {model!r} (404)"
    if isinstance(exc, openai.RateLimitError):
        return "The model server is rate limiting requests (429); try again shortly"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return f"The model server failed ({exc.status_code})"
        return f"The model server refused the request ({exc.status_code}): {_server_message(exc)}"
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return "The model server sent a malformed response"
    if isinstance(exc, openai.APIError):  # an `error` event in the middle of the stream
        return f"The model server reported an error: {_server_message(exc)}"
    return "The model server failed"


def transient(exc: Exception) -> bool:
    """Whether the same request may well succeed a moment later."""
    if isinstance(exc, openai.APIStatusError):
        return retryable_status(exc.status_code)
    if isinstance(exc, openai.APIConnectionError | openai.APIResponseValidationError | ValueError):
        return True  # timeouts included; a garbled response is a glitch of the server or the network
    if isinstance(exc, openai.APIError):  # an `error` event: vLLM puts an HTTP status in its `code`
        status = exc.body.get("code") if isinstance(exc.body, dict) else None
        if isinstance(status, str) and status.isdigit():
            status = int(status)
        return not isinstance(status, int) or retryable_status(status)
    return False


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    text = message if isinstance(message, str) and message else exc.message
    return text[:MAX_REASON_CHARS]


def _scrub(text: str, secret: str) -> str:
    # Servers echo the key in some messages (OpenAI's "Incorrect API key provided: sk-..."); never pass it on.
    return text.replace(secret, "***") if secret else text

"""The assistant on any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama.cpp), with tools."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
import orjson
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
)
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from server.assistant.providers.base import (
    ChatMessage,
    ProviderError,
    ProviderEvent,
    TextDelta,
    ToolCallRequest,
    ToolSpec,
)
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
DEFAULT_MAX_RETRIES = 1
"""One retry for connection errors, 408/409/429/5xx, before any text streamed (the SDK's own policy)."""
MAX_CONNECT_TIMEOUT = 10.0
INVALID_JSON_KEY = "invalid_json_arguments"
"""Carries unparsable arguments; no tool accepts it, so the model gets an `invalid_arguments` result."""
MAX_REASON_CHARS = 200


class OpenAIProvider:
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        base_url: str = OPENAI_BASE_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self._api_key = api_key or ""
        self._client = openai.AsyncOpenAI(
            api_key=api_key or PLACEHOLDER_API_KEY,
            base_url=base_url,
            # `timeout` bounds each wait on the server (connecting, the first byte, the gap between chunks),
            # not the whole reply: a model may stream for minutes. TURN_TIMEOUT bounds the turn.
            timeout=openai.Timeout(timeout, connect=min(timeout, MAX_CONNECT_TIMEOUT)),
            max_retries=max_retries,
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
        return cls(model=settings.llm_model, base_url=base_url, api_key=api_key, timeout=settings.llm_timeout)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.close()

    async def stream(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> AsyncIterator[ProviderEvent]:
        """One Chat Completions call: text deltas as they arrive, then the tool calls, once the stream ends.

        Every failure of the server becomes a `ProviderError` with a short reason. If the consuming
        task is cancelled, the `finally` below closes the HTTP response, so the server sees the
        disconnect and stops generating.
        """
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=to_openai_messages(messages),
                tools=[to_openai_tool(spec) for spec in tools] if tools else openai.omit,
                stream=True,
            )
        except openai.APIError as exc:
            raise self._error(exc) from exc
        calls = ToolCallAccumulator()
        finish_reason: str | None = None
        try:
            async for chunk in response:
                for text in _read_chunk(chunk, calls):
                    yield TextDelta(text)
                finish_reason = _finish_reason(chunk) or finish_reason
        except (openai.APIError, ValueError) as exc:  # ValueError: a chunk that is not JSON, or not a chunk
            raise self._error(exc, mid_stream=True) from exc
        finally:
            await response.close()
        if finish_reason == "content_filter":
            raise ProviderError("The model server's content filter stopped the reply")
        if finish_reason == "length":
            # The reply is cut at the model's token limit: keep what came. A call cut mid-arguments
            # fails to parse and comes back to the model as an `invalid_arguments` result.
            logger.info("The model stopped at its token limit (finish_reason=length)")
        for call in calls.finish():
            yield call

    def _error(self, exc: Exception, *, mid_stream: bool = False) -> ProviderError:
        reason = _scrub(
            describe_error(exc, model=self.model, timeout=self.timeout, mid_stream=mid_stream), self._api_key
        )
        logger.warning("Model server error: %s (%s)", reason, type(exc).__name__)
        return ProviderError(reason)


# --- messages and tools out ------------------------------------------------------------------


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
    """Our system prompt first, then the conversation in Chat Completions' shape."""
    result: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM_PROMPT}]
    result.extend(to_openai_message(message) for message in messages)
    return result


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


def _read_chunk(chunk: ChatCompletionChunk, calls: ToolCallAccumulator) -> list[str]:
    """The text of one chunk; its tool-call fragments go to `calls`.

    Only choice 0 counts (we never ask for `n` > 1). Chunks without choices (usage, Azure's
    prompt filter results) carry nothing for us.
    """
    texts: list[str] = []
    for choice in chunk.choices:
        if choice.index != 0:
            continue
        if choice.delta.content:
            texts.append(choice.delta.content)
        for fragment in choice.delta.tool_calls or ():
            calls.add(fragment)
    return texts


def _finish_reason(chunk: ChatCompletionChunk) -> str | None:
    return next((c.finish_reason for c in chunk.choices if c.index == 0 and c.finish_reason), None)


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

    def add(self, fragment: ChoiceDeltaToolCall) -> None:
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


def _server_message(exc: openai.APIError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    text = message if isinstance(message, str) and message else exc.message
    return text[:MAX_REASON_CHARS]


def _scrub(text: str, secret: str) -> str:
    # Servers echo the key in some messages (OpenAI's "Incorrect API key provided: sk-..."); never pass it on.
    return text.replace(secret, "***") if secret else text

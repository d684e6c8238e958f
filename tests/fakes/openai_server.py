"""A scripted OpenAI-compatible model server for tests: real HTTP and SSE on a loopback port.

Each test queues the responses the next requests get, in order, and reads back the requests
the server received. A streamed response is a list of steps: text deltas, tool-call fragments,
a finish reason, pauses, an `error` event, a clean cut, an abrupt disconnect. The wire format is the one of
`POST /v1/chat/completions` with `stream: true`: `data: {chunk}` events, then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from tests.support.timing import TIMEOUT, wait_until

CREATED = 1_700_000_000


# --- the script --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A chunk whose delta carries `text`."""

    text: str


@dataclass(frozen=True)
class ToolFragment:
    """A chunk with one piece of a tool call: `id` and `name` come in a call's first piece only."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Finish:
    reason: str
    """stop, tool_calls, length or content_filter."""


@dataclass(frozen=True)
class Raw:
    """An event sent as is: a chunk with no choices (as usage reports are), or bytes that are not JSON."""

    chunk: dict[str, Any] | bytes


@dataclass(frozen=True)
class Flush:
    """Send the headers and the role chunk now: a `Pause` after this is a stall after the first chunk."""


@dataclass(frozen=True)
class Pause:
    """Send nothing for `seconds` (ends early if the client goes away). Before any chunk it delays the headers."""

    seconds: float


@dataclass(frozen=True)
class Hold:
    """Send nothing more until the client goes away or the server stops."""


@dataclass(frozen=True)
class StreamError:
    """An `error` event mid-stream, the way OpenAI and vLLM report failures after the headers."""

    message: str
    code: int | str | None = None
    """vLLM puts the HTTP status of the failure here (400 for a bad request); OpenAI a word or nothing."""


@dataclass(frozen=True)
class Truncate:
    """End the body here, cleanly, without `[DONE]`: to the client the stream just stops."""


@dataclass(frozen=True)
class Disconnect:
    """Cut the connection without finishing the body."""


Step = Text | ToolFragment | Finish | Raw | Flush | Pause | Hold | StreamError | Truncate | Disconnect


class Stream:
    """A 200 `text/event-stream` response: a role chunk, the steps, then `[DONE]` unless cut short.

    A stream gets a finish reason only from a `Finish` step: without one it is an unfinished reply.
    """

    def __init__(self, *steps: Step) -> None:
        self.steps = steps


@dataclass(frozen=True)
class ErrorStatus:
    """A JSON error response with OpenAI's body shape."""

    status: int
    message: str = "something went wrong"
    type: str = "server_error"
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers, such as `retry-after` or `retry-after-ms`."""


Response = Stream | ErrorStatus


def text_reply(text: str, *, size: int = 4, finish: str = "stop") -> Stream:
    """`text` in chunks of `size` characters, then the finish reason."""
    return Stream(*(Text(text[i : i + size]) for i in range(0, len(text), size)), Finish(finish))


def tool_reply(*calls: tuple[str, str, dict[str, Any]], pieces: int = 3, text: str = "") -> Stream:
    """Tool calls `(id, name, arguments)`, each split into `pieces` fragments, interleaved by index."""
    per_call: list[list[Step]] = []
    for index, (call_id, name, arguments) in enumerate(calls):
        encoded = orjson.dumps(arguments).decode()
        size = max(1, -(-len(encoded) // pieces))
        fragments: list[Step] = [ToolFragment(index, id=call_id, name=name)]
        fragments += [ToolFragment(index, encoded[i : i + size]) for i in range(0, len(encoded), size)]
        per_call.append(fragments)
    interleaved = [step for group in itertools.zip_longest(*per_call) for step in group if step is not None]
    prefix: list[Step] = [Text(text)] if text else []
    return Stream(*prefix, *interleaved, Finish("tool_calls"))


# --- what the server saw -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def tool_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.body.get("tools", [])]


class _Cut(Exception):
    """Raised inside the app to make uvicorn drop the connection mid-body."""


class _QuietCuts(logging.Filter):
    # uvicorn logs every exception of an app; the scripted cuts are expected, so keep them out of the log.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], _Cut))


# --- the server --------------------------------------------------------------------------------


class FakeOpenAIServer:
    """`async with FakeOpenAIServer() as fake:` serves on a free loopback port until the block ends."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.disconnects = 0
        """Streams the client closed before the server finished them."""
        self.disconnected = asyncio.Event()
        """Set when a client closes a stream before the server finished it."""
        self._script: deque[Response] = deque()
        self._closing = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._filter = _QuietCuts()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *responses: Response) -> None:
        """The next requests get these responses, in order; unscripted requests get a 500 saying so."""
        self._script.extend(responses)

    def reset(self) -> None:
        """Forget the script and what was received (between tests sharing one server)."""
        self._script.clear()
        self.requests.clear()
        self.disconnects = 0
        self.disconnected = asyncio.Event()

    async def __aenter__(self) -> FakeOpenAIServer:
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=0, interface="asgi3", lifespan="off", log_config=None, access_log=False
        )
        self._server = uvicorn.Server(config)
        logging.getLogger("uvicorn.error").addFilter(self._filter)
        self._task = asyncio.create_task(self._server._serve())  # _serve: no signal handlers
        server, task = self._server, self._task
        await wait_until(lambda: server.started or task.done())
        if task.done():
            task.result()
            raise RuntimeError("the fake model server stopped during start-up")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # releases every Hold and Pause, so uvicorn's graceful shutdown can finish
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, TIMEOUT)
        logging.getLogger("uvicorn.error").removeFilter(self._filter)

    # --- ASGI ----------------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        raw = await _read_body(receive)
        body = orjson.loads(raw) if raw else {}
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        self.requests.append(ReceivedRequest(scope["method"], scope["path"], headers, body))
        if scope["method"] != "POST" or scope["path"] != "/v1/chat/completions":
            await _send_json(send, 404, {"error": {"message": f"no route {scope['path']}", "type": "not_found"}})
            return
        response = self._script.popleft() if self._script else ErrorStatus(500, "fake server: no response was queued")
        if isinstance(response, ErrorStatus):
            error = {"message": response.message, "type": response.type, "param": None, "code": None}
            await _send_json(send, response.status, {"error": error}, response.headers)
            return
        await self._stream(response, body.get("model", "fake-model"), receive, send)

    async def _stream(self, response: Stream, model: str, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_disconnect(receive, gone))
        chunks = _ChunkWriter(send, model)
        try:
            await chunks.write({"role": "assistant", "content": ""}, lazy=True)
            for step in response.steps:
                if gone.is_set() or chunks.ended:
                    break
                await self._play(step, chunks, gone)
            if gone.is_set():
                self.disconnects += 1
                self.disconnected.set()
            elif not chunks.ended:
                await chunks.done()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _play(self, step: Step, chunks: _ChunkWriter, gone: asyncio.Event) -> None:
        match step:
            case Text(text):
                await chunks.write({"content": text})
            case ToolFragment(index, arguments, call_id, name):
                await chunks.write({"tool_calls": [_fragment(index, arguments, call_id, name)]})
            case Finish(reason):
                await chunks.write({}, finish_reason=reason)
            case Raw(chunk):
                await chunks.event(chunk)
            case Flush():
                await chunks.start()
            case Pause(seconds):
                await _first(gone, self._closing, timeout=seconds)
            case Hold():
                await chunks.start()  # a held stream has sent its headers: the client is reading the body
                await _first(gone, self._closing, timeout=None)
            case StreamError(message, code):
                await chunks.event({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
            case Truncate():
                await chunks.end()
            case Disconnect():
                await chunks.start()
                raise _Cut()


class _ChunkWriter:
    """Writes `chat.completion.chunk` events; the headers go out with the first byte of the body."""

    def __init__(self, send: Send, model: str) -> None:
        self._send = send
        self._model = model
        self._started = False
        self._pending: list[bytes] = []
        self.ended = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})
        for data in self._pending:
            await self._body(data)
        self._pending.clear()

    async def write(self, delta: dict[str, Any], *, finish_reason: str | None = None, lazy: bool = False) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [choice],
        }
        if lazy:  # the role chunk waits for the first real event, so a leading Pause delays the headers
            self._pending.append(_sse(chunk))
            return
        await self.event(chunk)

    async def event(self, data: dict[str, Any] | bytes) -> None:
        await self.start()
        await self._body(_sse(data))

    async def done(self) -> None:
        await self.start()
        await self._body(b"data: [DONE]\n\n", more=False)

    async def end(self) -> None:
        """Finish the body with nothing more: no finish reason, no `[DONE]`."""
        await self.start()
        await self._body(b"", more=False)
        self.ended = True

    async def _body(self, data: bytes, *, more: bool = True) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})


def _sse(data: dict[str, Any] | bytes) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


def _fragment(index: int, arguments: str, call_id: str | None, name: str | None) -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
    if name is not None:
        fragment["function"]["name"] = name
    return fragment


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()


async def _first(*events: asyncio.Event, timeout: float | None) -> None:
    """Wait until any of `events` is set, or `timeout` passes."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    data = orjson.dumps(body)
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw_headers += [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})

"""One authenticated socket: a reader for client frames and a writer that delivers events in seq order.

Delivery (`Sequencer`): every persisted event of the user reaches the socket once, in seq
order, or the socket gets `resync_required`. Overflow policy: the queue between the hub and the
writer is bounded; when it is full the socket is a slow consumer: it gets `resync_required` and
is closed with 1013, instead of memory growing without bound. A peer that stops reading
altogether cannot hold the server: a frame that cannot be written within SEND_TIMEOUT (or the
closing handshake, within CLOSE_TIMEOUT) ends with the connection aborted.

Session end: when the socket's session ends (logout, revocation, password change, account
deletion), on any worker, the hub hands it a `session.ended` control message: the socket drops
what is queued and closes with 4401 at once. `auth.refresh` may move it to another session of
the same user.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import metrics, protocol
from server.auth.tokens import TokenClaims
from server.db.engine import outage_of
from server.errors import AppError, AuthError, BadJsonError, CloseCode, RateLimitedError, UnavailableError
from server.logs import throttled
from server.realtime.envelope import Envelope
from server.realtime.hub import Hub
from server.ws.ratelimit import TokenBucket
from server.ws.sequencer import EventLog, Sequencer
from server.ws.transport import FrameWriter

logger = logging.getLogger(__name__)

SEND_TIMEOUT = 10.0
"""A socket that cannot take one frame in this long is dead or hostile: it is aborted."""
CLOSE_TIMEOUT = 5.0


class Chat(Protocol):
    """What a socket asks of the chat service (`server.chat.service.ChatService`)."""

    async def submit(
        self,
        user_id: int,
        *,
        conversation_id: int | None,
        text: str,
        client_msg_id: str,
        on_ack: Callable[[protocol.Ack], None] | None = None,
    ) -> protocol.Ack: ...

    async def cancel(self, user_id: int, turn_id: str) -> None: ...


class Reminders(Protocol):
    """What a socket asks of reminders (`server.reminders.actions.ReminderActions`)."""

    async def snooze(self, user_id: int, task_id: int, minutes: int) -> None: ...

    async def dismiss(self, user_id: int, task_id: int) -> None: ...


Authenticate = Callable[[str], Awaitable[TokenClaims]]
"""A token -> its claims, once its session is known to be alive (`Sessions.authenticate`)."""
SessionAlive = Callable[[str, int], Awaitable[bool]]
"""(session id, user id) -> whether the session still exists (`Sessions.is_alive`)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-socket settings (see docs/protocol.md)."""

    send_queue: int
    rate_per_second: float
    rate_burst: int
    idle_timeout: float
    max_frame_bytes: int
    resume_max_events: int


@dataclass(frozen=True, slots=True)
class _Replay:
    after_seq: int


@dataclass(frozen=True, slots=True)
class _Direct:
    """A reply to this socket only (ack, error, pong): not part of the event stream."""

    text: str


_CATCH_UP = object()
_Item = Envelope | _Replay | _Direct | object


class Connection:
    # Slots: one of these lives per open socket, and tens of thousands may be open.
    __slots__ = (
        "_authenticate",
        "_bucket",
        "_chat",
        "_closing",
        "_ended",
        "_frames",
        "_hub",
        "_limits",
        "_log",
        "_overflowed",
        "_queue",
        "_reader_stopped",
        "_reading",
        "_reminders",
        "_sending",
        "_sequencer",
        "_session_alive",
        "_wakeup",
        "_writer",
        "connection_id",
        "expires_at",
        "session_id",
        "user_id",
        "ws",
    )

    def __init__(
        self,
        websocket: WebSocket,
        *,
        claims: TokenClaims,
        connection_id: str,
        chat: Chat,
        hub: Hub,
        log: EventLog,
        authenticate: Authenticate,
        session_alive: SessionAlive,
        limits: Limits,
        reminders: Reminders | None = None,
    ) -> None:
        self.ws = websocket
        self.user_id = claims.user_id
        self.session_id = claims.session_id
        self.expires_at = claims.expires_at.timestamp()
        self.connection_id = connection_id
        self._chat = chat
        self._hub = hub
        self._log = log
        self._authenticate = authenticate
        self._session_alive = session_alive
        self._limits = limits
        self._reminders = reminders
        # A list and a bare future rather than a deque and an asyncio.Event: each of those keeps
        # a 600-byte deque block alive per idle socket. The queue is short and bounded.
        self._queue: list[_Item] = []
        self._wakeup: asyncio.Future[None] | None = None
        self._sequencer = Sequencer(log, user_id=self.user_id, start=0, max_replay=limits.resume_max_events)
        self._ended: list[str] | None = None
        """The last few turns this socket saw end: a late `delta` of theirs (a Redis outage can
        deliver one after the turn's `turn.end` was replayed from the log) is dropped."""
        self._overflowed = False
        self._reading = True
        self._reader_stopped = False
        self._sending = False
        self._writer: asyncio.Task[None] | None = None
        self._closing: tuple[int, str] | None = None
        self._bucket = TokenBucket(rate=limits.rate_per_second, burst=limits.rate_burst)
        self._frames = FrameWriter(websocket)

    # --- Subscriber (called by the hub, must not block) -------------------------------------

    def deliver(self, envelope: Envelope) -> None:
        self._enqueue(envelope)

    def catch_up(self) -> None:
        self._enqueue(_CATCH_UP)

    def control(self, message: dict[str, Any]) -> None:
        if message.get("type") == "session.ended" and self.session_id in message.get("session_ids", ()):
            self._end_now(CloseCode.UNAUTHENTICATED, "session ended")

    def _enqueue(self, item: _Item) -> None:
        if self._overflowed or self._closing is not None:
            return
        if len(self._queue) >= self._limits.send_queue:
            self._overflowed = True
            self._queue.clear()
            if self._sending and self._writer is not None:
                self._writer.cancel()  # stuck writing to a peer that does not read: go straight to closing
        else:
            self._queue.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def send_direct(self, frame: Any) -> None:
        self._enqueue(_Direct(orjson.dumps(frame).decode()))

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, after_seq: int | None) -> None:
        """Serve the socket until it closes. The caller has accepted and authenticated it."""
        async with self._hub.interest(self.user_id, self):
            # Subscribed first, then read where the log stands: nothing falls in between.
            last_seq = await self._log.last_seq(self.user_id)
            self._sequencer.cursor = self._sequencer.floor = last_seq
            await self._send(
                protocol.hello(
                    user_id=self.user_id,
                    connection_id=self.connection_id,
                    last_seq=last_seq,
                    expires_at=int(self.expires_at),
                )
            )
            if after_seq is not None:
                # Ahead of live events that arrived while hello was sent: the replay goes first.
                self._queue.insert(0, _Replay(after_seq))
            # Either side ending ends the connection (websockets' patterns guide). The reader runs
            # in this task and the writer in one of its own: one task less per idle socket.
            reader = asyncio.current_task()
            assert reader is not None
            writer = asyncio.create_task(self._write_loop(), name=f"ws-write-{self.connection_id}")
            writer.add_done_callback(lambda _: self._stop_reading(reader))
            try:
                await self._read_loop()
            except asyncio.CancelledError:
                if not self._reader_stopped or reader.uncancel() > 0:
                    raise  # cancelled from outside (shutdown), not by the writer
            except WebSocketDisconnect:
                pass
            finally:
                self._reading = False
                writer.cancel()
                try:
                    await writer
                except (asyncio.CancelledError, WebSocketDisconnect):
                    pass
                except Exception as exc:  # a dead peer (send timeout, reset), or the log unreadable
                    logger.info("Connection %s ended: %r", self.connection_id, exc)
                    if self._closing is None:  # 1011: reconnect and resume, not a normal close
                        self._closing = (CloseCode.INTERNAL_ERROR, "internal error")
        await self._close()

    @property
    def close_code(self) -> int | None:
        """The code the server closed (or is closing) the socket with; None when the client closed it."""
        return None if self._closing is None else self._closing[0]

    def _stop_reading(self, reader: asyncio.Task[Any]) -> None:
        """The writer ended (slow consumer, dead peer): stop waiting for frames too."""
        if self._reading:
            self._reader_stopped = True
            reader.cancel()

    def close_later(self, code: int, reason: str) -> None:
        """Close the socket with this code: after what is queued when the writer decides it (overflow),
        at once when the reader does (idle, token expiry)."""
        if self._closing is None:
            self._closing = (code, reason)
        self._wake()

    def _end_now(self, code: int, reason: str) -> None:
        """Close without sending what is queued (the session behind it is gone)."""
        self._queue.clear()
        self._sequencer.drop_held()
        self.close_later(code, reason)

    async def _close(self) -> None:
        code, reason = self._closing or (CloseCode.NORMAL, "")
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.ws.close(code=code, reason=reason)
        except TimeoutError:
            self._frames.abort()  # the peer takes nothing, not even the close frame
        except Exception:  # already gone
            return

    # --- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            wait = min(self._limits.idle_timeout, max(0.0, self.expires_at - time.time()))
            try:
                async with asyncio.timeout(wait):  # not wait_for: no extra task per idle socket
                    message = await self.ws.receive()
            except TimeoutError:
                if time.time() >= self.expires_at:
                    self.close_later(CloseCode.UNAUTHENTICATED, "token expired")
                else:
                    self.close_later(CloseCode.NORMAL, "idle timeout")
                return
            if message["type"] == "websocket.disconnect":
                return
            try:
                await self._on_message(message)
            except AppError as exc:  # the error tree, mapped to a frame once (as REST maps it to a response)
                self.send_direct(protocol.error_from(exc))

    async def _on_message(self, message: MutableMapping[str, Any]) -> None:
        """Handle one client frame; what goes wrong is raised as an `AppError` (the socket stays open)."""
        text = message.get("text")
        if text is None:
            raise BadJsonError("Binary frames are not supported; send JSON text")
        if not self._bucket.take():
            metrics.RATE_LIMITED.labels(limit="ws_frames").inc()
            raise RateLimitedError("Too many frames, slow down", extra={"retry_after": 1})
        frame = None
        try:
            frame = protocol.parse_client_frame(text, max_bytes=self._limits.max_frame_bytes)
            await _HANDLERS[type(frame)](self, frame)
        except AppError:
            raise
        except Exception as exc:
            error: AppError | None = outage_of(exc)
            if error is None:
                # A bug, not bad input: logged once, and the socket stays usable. A retry with the
                # same client_msg_id gets the ack if the message was kept.
                logger.exception("%s frame failed on connection %s", type(frame).__name__, self.connection_id)
                error = AppError()
            else:
                # Nothing was acked, so nothing is lost: the client retries with the same client_msg_id.
                metrics.DATABASE_ERRORS.labels(surface="socket").inc()
                throttled(logger, "database.socket").failure("Frame failed, database unavailable: %r", exc)
            if isinstance(frame, protocol.Chat):
                error.extra["ref"] = frame.client_msg_id
            raise error from exc

    async def _on_chat(self, frame: protocol.Chat) -> None:
        try:
            await self._chat.submit(
                self.user_id,
                conversation_id=frame.conversation_id,
                text=frame.message,
                client_msg_id=frame.client_msg_id,
                on_ack=self.send_direct,
            )
        except AppError as exc:
            exc.extra.setdefault("ref", frame.client_msg_id)
            raise

    async def _on_cancel(self, frame: protocol.Cancel) -> None:
        await self._chat.cancel(self.user_id, frame.turn_id)

    async def _on_resume(self, frame: protocol.Resume) -> None:
        self._enqueue(_Replay(frame.after_seq))

    async def _on_ping(self, frame: protocol.Ping) -> None:
        self.send_direct(protocol.pong(frame.id))

    async def _on_refresh(self, frame: protocol.AuthRefresh) -> None:
        claims = await self._authenticate(frame.token)
        if claims.user_id != self.user_id:
            raise AuthError("The new token is for another user")
        if claims.session_id != self.session_id:  # moved to another session: its lifetime from now on
            self.session_id, self.expires_at = claims.session_id, claims.expires_at.timestamp()
        else:
            self.expires_at = max(self.expires_at, claims.expires_at.timestamp())
        self.send_direct(protocol.auth_refreshed(int(self.expires_at)))

    async def _on_snooze(self, frame: protocol.ReminderSnooze) -> None:
        if self._reminders is None:
            raise UnavailableError("Reminders are not served here")
        await self._reminders.snooze(self.user_id, frame.task_id, frame.minutes)

    async def _on_dismiss(self, frame: protocol.ReminderDismiss) -> None:
        if self._reminders is None:
            raise UnavailableError("Reminders are not served here")
        await self._reminders.dismiss(self.user_id, frame.task_id)

    async def _on_auth_again(self, frame: protocol.Auth) -> None:
        raise AuthError("Already authenticated; use auth.refresh to extend the session")

    # --- writing ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        sequencer = self._sequencer
        self._writer = asyncio.current_task()
        try:
            while True:
                if sequencer.holding and time.monotonic() >= sequencer.gap_deadline:
                    # A held event's predecessors never came live: read them from the log.
                    await self._send_texts(self._track(await sequencer.fill_gap(time.monotonic())))
                    continue
                if not self._queue and not self._overflowed and self._closing is None:
                    self._wakeup = asyncio.get_running_loop().create_future()
                    timeout = max(0.0, sequencer.gap_deadline - time.monotonic()) if sequencer.holding else None
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(timeout):
                            await self._wakeup
                    self._wakeup = None
                    continue
                if self._overflowed:
                    break
                if not self._queue:
                    return  # closing, everything queued was sent
                if isinstance(self._queue[0], Envelope | _Direct):
                    # Everything ready to go without the log goes out together: one write.
                    await self._send_texts(self._ready_texts())
                    continue
                item = self._queue.pop(0)
                if isinstance(item, _Replay):
                    await self._send_texts(self._track(await sequencer.resume(item.after_seq)))
                elif item is _CATCH_UP:
                    # The broker is back: the end of this socket's session may have been announced meanwhile.
                    if not await self._session_alive(self.session_id, self.user_id):
                        self._end_now(CloseCode.UNAUTHENTICATED, "session ended")
                        continue
                    await self._send_texts(self._track(await sequencer.fill_gap(time.monotonic())))
        except asyncio.CancelledError:
            if not self._overflowed:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]  # cancelled by the overflow itself
        # A slow consumer: tell it where the log stands, then close (the closing is bounded too).
        metrics.SLOW_CONSUMER_CLOSES.inc()
        self.close_later(CloseCode.TRY_AGAIN_LATER, "slow consumer")
        with contextlib.suppress(TimeoutError):
            await self._send_text(sequencer.overflowed())

    def _ready_texts(self) -> list[str]:
        """Take the queued events and replies up to the first item that needs the log, as texts to send."""
        queue, now, texts = self._queue, time.monotonic(), []
        taken = 0
        for item in queue:
            if isinstance(item, Envelope):
                if item.seq is not None:
                    ready = self._track(self._sequencer.offer(item.seq, item.text, now))
                    if ready and item.published is not None:  # goes out now, and came through the broker
                        metrics.FANOUT_LAG.observe(time.time() - item.published)
                    texts.extend(ready)
                elif not self._ended or _turn_of(item.text) not in self._ended:
                    texts.append(item.text)  # ephemeral (delta): no order to keep
            elif isinstance(item, _Direct):
                texts.append(item.text)
            else:
                break
            taken += 1
        del queue[:taken]
        return texts

    async def _send(self, frame: Any) -> None:
        await self._send_text(orjson.dumps(frame).decode())

    async def _send_texts(self, texts: list[str]) -> None:
        if not texts:
            return
        self._sending = True
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await self._frames.send(texts)
        except TimeoutError:
            self._frames.abort()  # the peer stopped reading: free the connection now
            raise
        finally:
            self._sending = False

    def _track(self, texts: list[str]) -> list[str]:
        """Note the turns whose `turn.end` is in `texts` (their late deltas are dropped); returns `texts`."""
        for text in texts:
            if _TURN_END in text and (turn_id := _turn_of(text)):
                ended = self._ended = self._ended or []
                ended.append(turn_id)
                if len(ended) > ENDED_KEPT:
                    del ended[0]
        return texts

    async def _send_text(self, text: str) -> None:
        await self._send_texts([text])


ENDED_KEPT = 8
_TURN_END = '"type":"turn.end"'
_TURN_ID = '"turn_id":"'


def _turn_of(text: str) -> str:
    """The `turn_id` of a turn frame's text (our own compact JSON: no need to parse it)."""
    start = text.find(_TURN_ID)
    if start < 0:
        return ""
    start += len(_TURN_ID)
    return text[start : text.find('"', start)]


#: Frame type -> handler: a dispatch table, shared by every connection.
_HANDLERS: dict[type[protocol.ClientFrameType], Callable[[Connection, Any], Awaitable[None]]] = {
    protocol.Chat: Connection._on_chat,
    protocol.Cancel: Connection._on_cancel,
    protocol.Resume: Connection._on_resume,
    protocol.Ping: Connection._on_ping,
    protocol.AuthRefresh: Connection._on_refresh,
    protocol.Auth: Connection._on_auth_again,
    protocol.ReminderSnooze: Connection._on_snooze,
    protocol.ReminderDismiss: Connection._on_dismiss,
}

"""One authenticated socket: a reader for client frames and a writer that delivers events in seq order.

Delivery guarantee: every persisted event of the user (it has a `seq`) reaches the socket
once, in seq order, or the socket gets `resync_required`. The writer keeps `cursor`, the
last seq sent. A live event with the next seq is sent at once; a later one waits briefly
for the missing seqs (events from two workers can overtake each other), then the gap is
read from the event log; older seqs are duplicates and dropped. Because an event is
published only after its transaction commits, and one user's transactions commit in seq
order, a gap seen live is always readable from the database.

Overflow policy: the queue between the broker and the writer is bounded. When it is full
the socket is a slow consumer: it gets `resync_required` and is closed (1013), instead of
memory growing without bound.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server.auth.tokens import TokenClaims
from server.db import events
from server.db.engine import is_unavailable
from server.errors import AppError, AuthError, CloseCode, ErrorCode
from server.realtime import protocol
from server.realtime.envelope import Envelope
from server.runtime import Runtime
from server.ws.ratelimit import TokenBucket

logger = logging.getLogger(__name__)

GAP_WAIT = 0.15
"""How long a live event waits for its missing predecessors before they are read from the log."""
SEND_TIMEOUT = 10.0
"""A socket that cannot take one frame in this long is dead or hostile: it is closed."""


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
        "_bucket",
        "_closing",
        "_cursor",
        "_floor",
        "_gap_deadline",
        "_held",
        "_max_queue",
        "_overflowed",
        "_queue",
        "_reader_stopped",
        "_reading",
        "_wakeup",
        "chat",
        "connection_id",
        "expires_at",
        "runtime",
        "session_id",
        "user_id",
        "ws",
    )

    def __init__(self, websocket: WebSocket, *, runtime: Runtime, claims: TokenClaims, connection_id: str) -> None:
        self.ws = websocket
        self.runtime = runtime
        self.chat = runtime.chat
        self.user_id = claims.user_id
        self.session_id = claims.session_id
        self.expires_at = claims.expires_at.timestamp()
        self.connection_id = connection_id
        settings = runtime.settings
        # A list and a bare future rather than a deque and an asyncio.Event: each of those keeps
        # a 600-byte deque block alive per idle socket. The queue is short and bounded.
        self._queue: list[_Item] = []
        self._max_queue = settings.ws_send_queue
        self._wakeup: asyncio.Future[None] | None = None
        self._cursor = 0
        self._floor = 0  # every seq in (floor, cursor] has been sent on this socket
        self._held: dict[int, Envelope] = {}
        self._gap_deadline = 0.0  # when the oldest held event stops waiting for its predecessors
        self._overflowed = False
        self._reading = True
        self._reader_stopped = False
        self._closing: tuple[int, str] | None = None
        self._bucket = TokenBucket(rate=settings.ws_rate_per_second, burst=settings.ws_rate_burst)

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
        if len(self._queue) >= self._max_queue:
            self._overflowed = True
            self._queue.clear()
        else:
            self._queue.append(item)
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def send_direct(self, frame: dict[str, Any]) -> None:
        self._enqueue(_Direct(orjson.dumps(frame).decode()))

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, after_seq: int | None) -> None:
        """Serve the socket until it closes. The caller has accepted and authenticated it."""
        async with self.runtime.hub.interest(self.user_id, self):
            # Subscribed first, then read where the log stands: nothing falls in between.
            async with self.runtime.reads() as session:
                last_seq = await events.last_seq(session, self.user_id)
            self._cursor = self._floor = last_seq
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
        self._held.clear()
        self.close_later(code, reason)

    async def _close(self) -> None:
        code, reason = self._closing or (CloseCode.NORMAL, "")
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, reason=reason)

    # --- reading ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        settings = self.runtime.settings
        while True:
            wait = min(settings.ws_idle_timeout, max(0.0, self.expires_at - time.time()))
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
            text = message.get("text")
            if text is None:
                self.send_direct(protocol.error(ErrorCode.BAD_JSON, "Binary frames are not supported; send JSON text"))
                continue
            if not self._bucket.take():
                self.send_direct(protocol.error(ErrorCode.RATE_LIMITED, "Too many frames, slow down"))
                continue
            frame = None
            try:
                frame = protocol.parse_client_frame(text, max_bytes=settings.ws_max_frame_bytes)
                await _HANDLERS[type(frame)](self, frame)
            except AppError as exc:
                self.send_direct(protocol.error_from(exc))
            except Exception as exc:
                ref = frame.client_msg_id if isinstance(frame, protocol.Chat) else None
                if not is_unavailable(exc):
                    # A bug, not bad input: logged once, and the socket stays usable. A retry with the
                    # same client_msg_id gets the ack if the message was kept.
                    logger.exception("%s frame failed on connection %s", type(frame).__name__, self.connection_id)
                    self.send_direct(protocol.error(ErrorCode.INTERNAL, "Internal server error", ref=ref))
                    continue
                # Nothing was acked, so nothing is lost: the client retries with the same client_msg_id.
                logger.warning("Frame failed, database unavailable: %r", exc)
                self.send_direct(
                    protocol.error(ErrorCode.UNAVAILABLE, "Storage is unavailable, retry shortly", ref=ref)
                )

    async def _on_chat(self, frame: protocol.Chat) -> None:
        try:
            await self.chat.submit(
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
        await self.chat.cancel(self.user_id, frame.turn_id)

    async def _on_resume(self, frame: protocol.Resume) -> None:
        self._enqueue(_Replay(frame.after_seq))

    async def _on_ping(self, frame: protocol.Ping) -> None:
        self.send_direct(protocol.pong(frame.id))

    async def _on_refresh(self, frame: protocol.AuthRefresh) -> None:
        claims = await self.runtime.sessions.authenticate(frame.token)
        if claims.user_id != self.user_id:
            raise AuthError("The new token is for another user")
        if claims.session_id != self.session_id:  # moved to another session: its lifetime from now on
            self.session_id, self.expires_at = claims.session_id, claims.expires_at.timestamp()
        else:
            self.expires_at = max(self.expires_at, claims.expires_at.timestamp())
        self.send_direct(protocol.auth_refreshed(int(self.expires_at)))

    async def _on_auth_again(self, frame: protocol.Auth) -> None:
        raise AuthError("Already authenticated; use auth.refresh to extend the session")

    # --- writing ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            if self._held and time.monotonic() >= self._gap_deadline:
                await self._replay()  # a held event's predecessors never came live: read them
                continue
            if not self._queue and not self._overflowed and self._closing is None:
                self._wakeup = asyncio.get_running_loop().create_future()
                timeout = max(0.0, self._gap_deadline - time.monotonic()) if self._held else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wakeup
                self._wakeup = None
                continue
            if self._overflowed:
                await self._send(protocol.resync_required(self._cursor, "slow consumer: too many events queued"))
                self.close_later(CloseCode.TRY_AGAIN_LATER, "slow consumer")
                return
            if not self._queue:
                return  # closing, everything queued was sent
            item = self._queue.pop(0)
            if isinstance(item, Envelope):
                await self._on_event(item)
            elif isinstance(item, _Direct):
                await self._send_text(item.text)
            elif isinstance(item, _Replay):
                await self._on_replay(item.after_seq)
            elif item is _CATCH_UP:
                await self._catch_up()

    async def _on_event(self, envelope: Envelope) -> None:
        if envelope.seq is None:
            await self._send_text(envelope.text)  # ephemeral (delta): no order to keep
        elif envelope.seq == self._cursor + 1:
            await self._send_text(envelope.text)
            self._cursor = envelope.seq
            await self._release_held()
        elif envelope.seq > self._cursor:
            if not self._held:
                self._gap_deadline = time.monotonic() + GAP_WAIT
            self._held[envelope.seq] = envelope

    async def _release_held(self) -> None:
        while (envelope := self._held.pop(self._cursor + 1, None)) is not None:
            await self._send_text(envelope.text)
            self._cursor += 1
        for seq in [seq for seq in self._held if seq <= self._cursor]:
            del self._held[seq]
        if self._held:
            self._gap_deadline = time.monotonic() + GAP_WAIT

    async def _on_replay(self, after_seq: int) -> None:
        """`resume`: send what the client missed up to where this socket's own stream began.

        Everything in (floor, cursor] was already sent here, so only (after_seq, floor] is read
        from the log: nothing is sent twice. (On a fresh socket floor == cursor, and the replay
        runs before any live event, so it is also in order.)
        """
        if after_seq > self._cursor:
            # The client claims to have seen events the log does not have (a reset database?).
            await self._send(protocol.resync_required(self._cursor, "after_seq is ahead of the server"))
            return
        if after_seq >= self._floor:
            return
        wanted = self._floor - after_seq
        rows: Sequence[tuple[int, str]] = []
        if wanted <= self.runtime.settings.resume_max_events:
            async with self.runtime.reads() as session:
                rows = await events.read_after(session, self.user_id, after_seq, limit=wanted, up_to=self._floor)
        if len(rows) != wanted:
            # Too far behind, or the events were pruned: the client reloads from REST.
            self._floor = self._cursor
            await self._send(protocol.resync_required(self._cursor, "too far behind to replay"))
            return
        for _seq, text in rows:
            await self._send_text(text)
        self._floor = after_seq

    async def _catch_up(self) -> None:
        """The broker is back: the end of this socket's session may have been announced meanwhile."""
        if not await self.runtime.sessions.is_alive(self.session_id, self.user_id):
            self._end_now(CloseCode.UNAUTHENTICATED, "session ended")
            return
        await self._replay()

    async def _replay(self) -> None:
        """Send every logged event after `cursor`, or `resync_required` if the log cannot fill the gap."""
        limit = self.runtime.settings.resume_max_events
        async with self.runtime.reads() as session:
            # `latest` first: every event up to it is committed, so the read below must include it.
            latest = await events.last_seq(session, self.user_id)
            rows = await events.read_after(session, self.user_id, self._cursor, limit=limit + 1)
        if len(rows) > limit or (rows and rows[0][0] != self._cursor + 1) or (not rows and latest > self._cursor):
            # Too far behind, or the events were pruned: the client reloads from REST.
            self._cursor = self._floor = latest
            self._held.clear()
            await self._send(protocol.resync_required(latest, "too far behind to replay"))
            return
        for seq, text in rows:
            await self._send_text(text)
            self._cursor = seq
        await self._release_held()

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_text(orjson.dumps(frame).decode())

    async def _send_text(self, text: str) -> None:
        async with asyncio.timeout(SEND_TIMEOUT):
            await self.ws.send_text(text)


#: Frame type -> handler: a dispatch table, shared by every connection.
_HANDLERS: dict[type[protocol.ClientFrameType], Callable[[Connection, Any], Awaitable[None]]] = {
    protocol.Chat: Connection._on_chat,
    protocol.Cancel: Connection._on_cancel,
    protocol.Resume: Connection._on_resume,
    protocol.Ping: Connection._on_ping,
    protocol.AuthRefresh: Connection._on_refresh,
    protocol.Auth: Connection._on_auth_again,
}

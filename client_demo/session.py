"""The WebSocket half of the protocol: one user's chat session that survives drops and tracks turns.

`ChatSession.run()` owns the connection: it connects with the bearer header, waits for `hello`,
and after a drop (close 1012 on a server restart, 1011, a reset, a refused connection) reconnects
with jittered exponential backoff and sends `resume {after_seq}` so no persisted event is missed.
Chats are kept in an outbox until their `ack`: a message typed while disconnected, or whose ack
was lost with the connection, is (re)sent after reconnecting with the same `client_msg_id`, which
the server answers with the same ack and never a second turn (docs/protocol.md, "Delivery
guarantee"). Events are deduplicated by `seq`, deltas by `offset`, so a replay shows nothing twice.

With `credentials`, the access token never runs out while the session lives: a minute before it
expires (`hello.expires_at`) the client refreshes it over REST and sends `auth.refresh` on the open
socket; a socket closed with 4401 is reopened with a refreshed token. Only when the refresh is
refused (the session ended: logout elsewhere, password change, revocation) is `reauthenticate`
asked for a new login.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from client_demo.credentials import Credentials, refresh_delay
from client_demo.errors import (
    ClientError,
    QuitError,
    RequestFailedError,
    ServerUnreachableError,
    SessionExpiredError,
)
from client_demo.turns import SessionView, Turn, TurnTracker, new_client_msg_id

T = TypeVar("T")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TOO_MANY = 4429
CLOSE_REASONS = {1012: "server restarting", 1011: "server error", 1013: "server overloaded"}
OPEN_TIMEOUT = 10.0
"""Handshake plus the `hello` frame."""

Reauthenticate = Callable[[str], Awaitable[str | None]]
"""Called with the close reason when the token is refused; returns a fresh token, or None to give up."""


@dataclass
class Backoff:
    """Exponential backoff with "equal jitter": half the delay is fixed, half random, so many clients
    dropped by one restart do not reconnect in lockstep."""

    base: float = 0.25
    cap: float = 5.0
    attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.base * 2.0**self.attempt)
        self.attempt += 1
        return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311  # nosec B311  # jitter, not a secret

    def reset(self) -> None:
        self.attempt = 0


class ChatSession:
    def __init__(
        self,
        *,
        server: str,
        url: str,
        token: str,
        view: SessionView,
        reauthenticate: Reauthenticate | None = None,
        give_up_after: float | None = None,
        backoff: Backoff | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.server = server
        self.url = url
        self.token = token
        self.view = view
        self._credentials = credentials
        self._expiry: tuple[float, float] | None = None
        """(expires_at, when it was learnt) of the socket's token, from `hello` and `auth.refreshed`."""
        self._refreshed = asyncio.Event()
        self._reauthenticate = reauthenticate
        self._give_up_after = give_up_after
        self._backoff = backoff or Backoff()
        self._ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.user_id: int | None = None
        self.cursor: int | None = None
        """The highest seq up to which every event was seen: what `resume` asks after."""
        self._ahead: set[int] = set()
        self._outbox: OrderedDict[str, Turn] = OrderedDict()
        """Chats not acked yet, by client_msg_id, in the order they were typed."""
        self.turns = TurnTracker(view)
        self._deferred: list[dict[str, Any]] = []
        """Frames that handlers (synchronous) want sent."""
        self._stopping = asyncio.Event()
        self._connections = 0
        """Connections that got as far as `hello`; numbers them for `Turn.sent_on`."""
        self._interrupted = False
        """The user was told the connection was lost (or the session expired): say when it is back."""
        self._runner: asyncio.Task[None] | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "ack": self._on_ack,
            "error": self._on_error,
            "resync_required": self._on_resync,
            "auth.refreshed": self._on_refreshed,
            "reminder": self.view.reminder,
        }

    # --- lifecycle: the session owns its connection task ---------------------------------------

    async def __aenter__(self) -> ChatSession:
        self._runner = asyncio.create_task(self.run(), name="chat-session")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await self._runner

    async def wait_for(self, awaitable: Awaitable[T], *, stop: asyncio.Event | None = None) -> T:
        """`awaitable`'s result, unless the session fails first (its error is raised) or `stop` is set
        (`QuitError`)."""
        assert self._runner is not None, "use the session as an async context manager"
        task = asyncio.ensure_future(awaitable)
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
        waiting = {task, self._runner} | ({stopped} if stopped else set())
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, stopped):
                if pending is not None and not pending.done():
                    pending.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        if self._runner.done():
            self._runner.result()  # raises what ended the session
            raise ClientError("the connection was closed")
        raise QuitError()

    # --- commands -----------------------------------------------------------------------------

    async def chat(self, message: str, conversation_id: int | None) -> Turn:
        """Queue a message; it is sent now if connected, else as soon as the session reconnects."""
        turn = Turn(client_msg_id=new_client_msg_id(), message=message, conversation_id=conversation_id)
        self._outbox[turn.client_msg_id] = turn
        await self._send_chat(turn)
        return turn

    async def cancel(self, turn: Turn) -> None:
        """Ask the server to stop `turn`; a turn not acked yet is cancelled as soon as it is."""
        turn.cancel_requested = True
        if turn.turn_id is not None:
            await self._send({"type": "cancel", "turn_id": turn.turn_id})
        elif not turn.sent and self._outbox.pop(turn.client_msg_id, None) is not None:
            self.turns.end(turn, "cancelled", "cancelled before it was sent")
        # Else sent but not acked: the cancel goes out with the ack (`_on_ack`).

    async def refresh(self, token: str) -> None:
        """Use `token` from now on; a live socket is extended with `auth.refresh` instead of closing at expiry."""
        self.token = token
        await self._send({"type": "auth.refresh", "token": token})

    async def close(self) -> None:
        self._stopping.set()
        if self._ws is not None:
            await self._ws.close()

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until `close()`. Raises a `ClientError` when it cannot go on."""
        lost_at: float | None = None
        loop = asyncio.get_running_loop()
        # A 4401 was answered with a refreshed token, and no connection has got as far as hello since.
        retried_with_refresh = False
        while not self._stopping.is_set():
            if self._credentials is not None:
                with contextlib.suppress(ClientError):  # unreachable now: the connect below fails and is retried
                    self.token = await self._credentials.fresh_token()
            try:
                ws = await self._open()
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                fatal = isinstance(exc, InvalidURI) or (
                    isinstance(exc, InvalidStatus) and 400 <= exc.response.status_code < 500
                )
                if fatal or (lost_at is None and self.user_id is None):
                    raise _connect_error(self.server, exc) from None  # refused, or never connected: fail fast
                if lost_at is None:
                    lost_at = loop.time()
                if self._give_up_after is not None and loop.time() - lost_at > self._give_up_after:
                    raise ServerUnreachableError(self.server) from None
                await asyncio.sleep(self._backoff.next_delay())
                continue
            connections = self._connections
            code, reason = await self._serve(ws)
            if self._stopping.is_set():
                return
            retried_with_refresh = retried_with_refresh and self._connections == connections
            if code == CLOSE_UNAUTHENTICATED and not retried_with_refresh and await self._refresh():
                retried_with_refresh = True
                continue  # the token ran out (or was refused): reconnect with a fresh one, silently
            if code == CLOSE_UNAUTHENTICATED:
                token = await self._reauthenticate(reason) if self._reauthenticate else None
                if token is None:
                    raise SessionExpiredError(reason)
                self.token = token
                self._interrupted = self.cursor is not None  # say "reconnected" if a session was going on
                continue
            if code == CLOSE_TOO_MANY:
                raise RequestFailedError(f"the server refused the connection: {reason or 'too many connections'}")
            if code != 1000:  # 1000 is an idle timeout: reconnect quietly
                self.view.connection_lost(CLOSE_REASONS.get(code or 0, ""))
                self._interrupted = True
            lost_at = loop.time()
            await asyncio.sleep(self._backoff.next_delay())

    async def _open(self) -> ClientConnection:
        return await connect(
            self.url,
            additional_headers={"Authorization": f"Bearer {self.token}"},
            open_timeout=OPEN_TIMEOUT,
            max_size=4 * 1024 * 1024,
        )

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, str]:
        """Authenticate, resume, flush the outbox, then dispatch frames until the socket closes."""
        keeper: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                raise ClientError(f"expected a hello frame from the server, got {hello.get('type')!r}")
            self.user_id = hello.get("user_id")
            self._note_expiry(hello.get("expires_at"))
            self._ws = ws
            self._connections += 1
            if self.cursor is None:
                self.cursor = int(hello.get("last_seq", 0))
            else:
                await ws.send(json.dumps({"type": "resume", "after_seq": self.cursor}))
            if self._interrupted:
                self._interrupted = False
                self.view.reconnected()
            self._backoff.reset()
            self.connected.set()
            for turn in list(self._outbox.values()):
                if turn.sent_on != self._connections:  # chat() may have sent it on this connection already
                    await self._send_chat(turn)
            for turn in self.turns.running():
                if turn.cancel_requested and turn.turn_id is not None:
                    await self._send({"type": "cancel", "turn_id": turn.turn_id})
            if self._credentials is not None:
                keeper = asyncio.create_task(self._keep_fresh(), name="token-keeper")
            async for raw in ws:
                self._dispatch(raw)
                while self._deferred:
                    await self._send(self._deferred.pop(0))
        except ConnectionClosed:
            pass
        except (TimeoutError, OSError):
            pass  # no hello in time, or the socket broke mid-frame: both are a lost connection
        finally:
            self._ws = None
            self.connected.clear()
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await keeper  # its failure is at worst a later 4401, handled like any other
            with contextlib.suppress(Exception):
                await ws.close()
        return ws.close_code, ws.close_reason or ""

    # --- keeping the token fresh --------------------------------------------------------------

    async def _refresh(self) -> bool:
        """A refreshed access token in `self.token`; False without credentials or when the session is gone."""
        if self._credentials is None:
            return False
        try:
            if not await self._credentials.refresh(stale=self.token):
                return False
        except ClientError:
            return False  # the server is unreachable: reconnecting finds out what is left
        self.token = self._credentials.token
        return True

    async def _keep_fresh(self) -> None:
        """While connected: refresh before the socket's token expires and hand the new one to the socket."""
        assert self._credentials is not None
        while self._expiry is not None:
            expires_at, learnt_at = self._expiry
            await asyncio.sleep(refresh_delay(expires_at, now=time.time(), received_at=learnt_at))
            if not await self._refresh():
                return  # the session is gone: the server closes the socket with 4401 when the token runs out
            self._refreshed.clear()
            if not await self._send({"type": "auth.refresh", "token": self.token}):
                return
            try:
                async with asyncio.timeout(OPEN_TIMEOUT):
                    await self._refreshed.wait()
            except TimeoutError:
                return  # refused (an `error` frame says why) or unanswered: the close that follows decides

    def _note_expiry(self, expires_at: object) -> None:
        self._expiry = (float(expires_at), time.time()) if isinstance(expires_at, (int, float)) else None

    async def _send(self, frame: dict[str, Any]) -> bool:
        if self._ws is None:
            return False
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False  # the run loop sees the close, reconnects and sends it again
        return True

    async def _send_chat(self, turn: Turn) -> None:
        if await self._send(
            {
                "type": "chat",
                "conversation_id": turn.conversation_id,
                "message": turn.message,
                "client_msg_id": turn.client_msg_id,
            }
        ):
            turn.sent_on = self._connections

    # --- frames -------------------------------------------------------------------------------

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        seq = frame.get("seq")
        if isinstance(seq, int) and frame.get("type") != "ack" and not self._first_sight(seq):
            return  # a replayed event this client already handled
        handler = self._handlers.get(str(frame.get("type")), self.turns.handle)
        handler(frame)

    def _first_sight(self, seq: int) -> bool:
        """Track seqs: True the first time one is seen, advancing `cursor` over every gap-free run."""
        assert self.cursor is not None
        if seq <= self.cursor or seq in self._ahead:
            return False
        self._ahead.add(seq)
        while self.cursor + 1 in self._ahead:
            self.cursor += 1
            self._ahead.discard(self.cursor)
        return True

    def _on_ack(self, frame: dict[str, Any]) -> None:
        turn = self._outbox.pop(str(frame.get("client_msg_id")), None)
        if turn is None or turn.turn_id is not None:
            return  # a duplicate ack (the chat was re-sent)
        turn.turn_id = str(frame["turn_id"])
        turn.conversation_id = frame.get("conversation_id")
        if turn.cancel_requested:
            self._deferred.append({"type": "cancel", "turn_id": turn.turn_id})
        self.turns.track(turn)

    def _on_error(self, frame: dict[str, Any]) -> None:
        code, detail = str(frame.get("code")), str(frame.get("detail"))
        turn = self._outbox.pop(str(frame.get("ref")), None)
        if turn is not None:
            self.turns.end(turn, "rejected", f"{detail} ({code})")
        else:
            self.view.server_error(code, detail)

    def _on_refreshed(self, frame: dict[str, Any]) -> None:
        self._note_expiry(frame.get("expires_at"))
        self._refreshed.set()

    def _on_resync(self, frame: dict[str, Any]) -> None:
        last_seq = frame.get("last_seq")
        if isinstance(last_seq, int):
            self.cursor, self._ahead = last_seq, set()
        self.view.resync(str(frame.get("reason", "")))


def _connect_error(server: str, exc: Exception) -> ClientError:
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        return RequestFailedError(f"{server} refused the WebSocket handshake (HTTP {status})", status_code=status)
    if isinstance(exc, InvalidURI):
        return ClientError(f"invalid server URL {server!r}")
    return ServerUnreachableError(server)

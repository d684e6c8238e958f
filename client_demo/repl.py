"""`chat-demo chat`: the interactive session, its slash commands, Ctrl-C and Ctrl-D.

Ctrl-C during a turn sends `cancel` and the session goes on; a second Ctrl-C, or one while idle,
quits, as does Ctrl-D or `/quit`. Lines typed while a turn runs wait for it to end. Input is read
with the event loop (`add_reader`) rather than a thread, so a password prompt can take the
terminal over cleanly when the session expires.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from getpass import getpass
from typing import Any, TypeVar

from client_demo.api import ApiClient, ws_url
from client_demo.config import Login, TokenStore
from client_demo.credentials import Credentials
from client_demo.due import DUE_WINDOW, due_line, zone_named
from client_demo.errors import AuthFailedError, QuitError, RequestFailedError, SessionExpiredError
from client_demo.session import ChatSession
from client_demo.terminal import Terminal, TerminalView, describe_result, describe_task
from client_demo.turns import Turn

T = TypeVar("T")

PROMPT = "you> "
HELP = """Type a message to chat with the assistant. Commands:
  /tasks     list your tasks
  /due       tasks due in the next 24 hours, and overdue ones (in your time zone)
  /history   messages of this conversation
  /new       start a new conversation
  /help      this help
  /quit      leave (also Ctrl-D; Ctrl-C cancels a running reply, or quits when idle)"""


class LineReader:
    """Lines of standard input on an asyncio queue; None at end of input."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._loop = asyncio.get_running_loop()
        self._watching = False
        self.echoed = os.isatty(self.fd)
        """A terminal echoes what is typed, newline included."""

    def start(self) -> None:
        try:
            self._loop.add_reader(self.fd, self._on_readable)
            self._watching = True
        except (PermissionError, OSError, NotImplementedError):
            # A regular file cannot be watched (epoll refuses it): read it from a thread instead.
            threading.Thread(target=self._read_all, name="stdin", daemon=True).start()

    def stop(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.fd)
            self._watching = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Let something else (getpass) read the terminal."""
        watching = self._watching
        self.stop()
        try:
            yield
        finally:
            if watching:
                self.start()

    def _on_readable(self) -> None:
        self._feed(os.read(self.fd, 4096))

    def _read_all(self) -> None:
        while chunk := os.read(self.fd, 4096):
            self._loop.call_soon_threadsafe(self._feed, chunk)
        self._loop.call_soon_threadsafe(self._feed, b"")

    def _feed(self, chunk: bytes) -> None:
        if not chunk:
            self.stop()
            if self._buffer:
                self.lines.put_nowait(self._buffer)
            self.lines.put_nowait(None)
            return
        self._buffer += self._decoder.decode(chunk)
        *complete, self._buffer = self._buffer.split("\n")
        for line in complete:
            self.lines.put_nowait(line.rstrip("\r"))


class Repl:
    def __init__(
        self, *, store: TokenStore, login: Login, conversation_id: int | None, terminal: Terminal | None = None
    ) -> None:
        self.store = store
        self.credentials = Credentials(store, login)
        self.conversation_id = conversation_id
        self.terminal = terminal or Terminal()
        self.api = ApiClient(login.server, tokens=self.credentials)
        self.view = TerminalView(self.terminal)
        self.session = ChatSession(
            server=login.server,
            url=ws_url(login.server),
            token=login.token,
            view=self.view,
            reauthenticate=lambda reason: self._reauthenticate(reason, stale=self.session.token),
            credentials=self.credentials,
        )
        self.quit = asyncio.Event()
        self._turn: Turn | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._reader: LineReader | None = None
        self._relogin = asyncio.Lock()
        self._commands: dict[str, Callable[[], Awaitable[None]]] = {
            "/tasks": self._show_tasks,
            "/due": self._show_due,
            "/history": self._show_history,
            "/new": self._new_conversation,
            "/help": self._help,
            "/quit": self._quit,
        }

    @property
    def login(self) -> Login:
        return self.credentials.login

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._reader = LineReader()
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            async with self.api, self.session:
                await self.session.wait_for(self.session.connected.wait(), stop=self.quit)
                await self._learn_zone()
                where = f"conversation {self.conversation_id}" if self.conversation_id else "a new conversation"
                self.terminal.line(f"Connected to {self.login.server} as {self.login.email}, {where}.")
                self.terminal.line("Type a message, /help for commands, Ctrl-D to quit.")
                self._reader.start()
                await self._loop()
        except QuitError:
            pass
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            self._reader.stop()
            self.terminal.drop_prompt()
            self.terminal.end_line()
        self.terminal.line("bye")

    async def _loop(self) -> None:
        assert self._reader is not None
        while not self.quit.is_set():
            self.terminal.prompt(PROMPT)
            line = await self.session.wait_for(self._reader.lines.get(), stop=self.quit)
            if line is None:
                return  # Ctrl-D
            self.terminal.input_ended()
            if not self._reader.echoed:
                self.terminal.write(line + "\n")  # piped input: show what was sent
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                command = self._commands.get(text.split()[0].lower())
                if command is None:
                    self.terminal.line(f"unknown command {text.split()[0]}: /help lists them")
                else:
                    await self.session.wait_for(command(), stop=self.quit)
                continue
            await self._chat(text)

    async def _chat(self, text: str) -> None:
        self._turn = turn = await self.session.chat(text, self.conversation_id)
        if not turn.sent:
            self.terminal.note("(not connected: the message will be sent once the connection is back)")
        try:
            await self.session.wait_for(turn.ended.wait(), stop=self.quit)
        finally:
            self._turn = None
        if turn.conversation_id is not None:
            self.conversation_id = turn.conversation_id

    def _interrupt(self) -> None:
        turn = self._turn
        if turn is None or turn.cancel_requested:
            self.quit.set()
            return
        self.terminal.note("cancelling (Ctrl-C again to quit)")
        self._spawn(self.session.cancel(turn))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- an expired session -------------------------------------------------------------------

    async def _reauthenticate(self, reason: str, *, stale: str) -> str | None:
        """The session of token `stale` is gone (its refresh was refused): prompt for the password.

        The socket and a REST call can both find the session gone at once (a call sent with the old
        token is answered while the password prompt holds the loop): one prompt at a time, and a caller
        whose token was replaced meanwhile gets the new one without a second prompt.
        """
        async with self._relogin:
            if self.login.token != stale:
                return self.login.token
            return await self._prompt_for_password(reason)

    async def _prompt_for_password(self, reason: str) -> str | None:
        assert self._reader is not None
        prompt = self.terminal.drop_prompt()
        why = f" ({reason})" if reason else ""
        self.terminal.note(f"your session expired{why}: log in again to continue")
        loop = asyncio.get_running_loop()
        # getpass blocks the loop on purpose: nothing else may read the terminal meanwhile, and
        # with the default SIGINT handler back, Ctrl-C at the prompt raises KeyboardInterrupt.
        loop.remove_signal_handler(signal.SIGINT)
        try:
            with self._reader.paused():
                for _ in range(3):
                    password = getpass(f"Password for {self.login.email} (empty to quit): ")
                    if not password:
                        return None
                    try:
                        async with ApiClient(self.login.server) as api:
                            result = await api.login(self.login.email, password)
                    except AuthFailedError as exc:
                        self.terminal.note(exc.message)
                        continue
                    self.credentials.replace(Login.from_auth(self.login.server, result, now=time.time()))
                    await self.session.refresh(self.login.token)
                    if prompt is not None:
                        self.terminal.prompt(prompt)
                    return self.login.token
                return None
        except (KeyboardInterrupt, EOFError):
            self.terminal.end_line()
            return None
        finally:
            loop.add_signal_handler(signal.SIGINT, self._interrupt)

    async def _rest(self, call: Callable[[], Awaitable[T]]) -> T:
        """A REST call (the token is refreshed as needed); when the session is gone, log in again and retry once."""
        stale = self.login.token
        try:
            return await call()
        except SessionExpiredError:
            if await self._reauthenticate("", stale=stale) is None:
                raise
            return await call()

    # --- slash commands -----------------------------------------------------------------------

    async def _show_tasks(self) -> None:
        page = await self._rest(lambda: self.api.tasks(self.login.user_id))
        tasks = page.get("data", [])
        if not tasks:
            self.terminal.line("No tasks.")
            return
        self.terminal.line(f"Tasks ({page.get('count', len(tasks))}):")
        for task in tasks:
            self.terminal.line(f"  {describe_task(task)}")

    async def _learn_zone(self) -> None:
        """Due times are shown in the account's zone (`PATCH /api/auth/me` sets it), not this machine's."""
        try:
            me = await self._rest(self.api.me)
        except RequestFailedError:
            return  # due times in UTC, as the account has them by default
        self.view.zone = zone_named(me.get("timezone", "UTC"))

    async def _show_due(self) -> None:
        now = datetime.now(UTC)
        page = await self._rest(
            lambda: self.api.tasks(
                self.login.user_id, status="pending", due_before=(now + DUE_WINDOW).isoformat(), sort="due"
            )
        )
        tasks = page.get("data", [])
        if not tasks:
            self.terminal.line("Nothing due in the next 24 hours.")
            return
        self.terminal.line(f"Due in the next 24 hours or overdue ({page.get('count', len(tasks))}):")
        for task in tasks:
            self.terminal.line(f"  {due_line(task, self.view.zone, now)}")

    async def _show_history(self) -> None:
        if self.conversation_id is None:
            self.terminal.line("No conversation yet: send a message first.")
            return
        conversation_id = self.conversation_id
        page = await self._rest(lambda: self.api.messages(self.login.user_id, conversation_id))
        self.terminal.line(f"Conversation {conversation_id}:")
        for message in page.get("data", []):
            role, content = message.get("role"), message.get("content", "")
            status = message.get("status")
            call = message.get("tool_call")
            if role == "tool" and isinstance(call, dict):
                ok, summary = describe_result(str(call.get("name")), call.get("result"))
                symbols = self.terminal.symbols
                self.terminal.line(
                    f"  {symbols.ok if ok else symbols.failed} {call.get('name')} {symbols.arrow} {summary}"
                )
            elif role in ("user", "assistant"):
                suffix = f" ({status})" if status and status != "done" else ""
                self.terminal.line(f"{'you' if role == 'user' else 'assistant'}: {content}{suffix}")

    async def _new_conversation(self) -> None:
        self.conversation_id = None
        self.terminal.line("Started a new conversation.")

    async def _help(self) -> None:
        self.terminal.line(HELP)

    async def _quit(self) -> None:
        self.quit.set()

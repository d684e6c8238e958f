"""`chat-demo` end to end: a real server process, the CLI in a pseudo-terminal or as a one-shot command."""

from __future__ import annotations

import asyncio
import json
import re
import stat
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from client_demo.config import Login, TokenStore
from client_demo.credentials import REST_MARGIN
from client_demo.errors import EXIT_AUTH, EXIT_ERROR, EXIT_OK, EXIT_TURN_CANCELLED
from tests.support.cli import PROVIDER, Cli, Pty, RestUser, make_server, signup
from tests.support.live import ServerProcess, free_port
from tests.support.settings import PASSWORD
from tests.support.timing import SCALE, TIMEOUT, wait_until
from tests.support.tokens import access_token

RULES = PROVIDER == "rules"
LONG_MESSAGE = "Tell me everything about " + "a very long list of chores " * 12
"""With the echo provider's delay between 8-character chunks, its reply takes a few seconds: time to cancel."""
TOOL_LINE = r'add_task (→|->) Added "[Bb]uy groceries" \(task \d+\)'


@pytest.fixture(scope="module")
async def servers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """The module's two servers, started side by side (start-up is most of this file's run time)."""
    assistant = make_server(tmp_path_factory.mktemp("cli-assistant"))
    cancellable = make_server(tmp_path_factory.mktemp("cli-echo"), provider="echo", echo_chunk_delay=0.05)
    try:
        await asyncio.gather(assistant.start(), cancellable.start())
        yield assistant, cancellable
    finally:
        await asyncio.gather(assistant.stop(), cancellable.stop())


@pytest.fixture
def assistant_server(servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    """The assistant that calls tools (rules)."""
    return servers[0]


@pytest.fixture
def cancellable_server(servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    """The echo provider with a pause between chunks: replies long enough to interrupt. The restart
    test stops and starts it again."""
    return servers[1]


@pytest.fixture
def cli(assistant_server: ServerProcess, tmp_path: Path) -> Cli:
    return Cli(server=assistant_server.base_url, home=tmp_path)


@pytest.fixture
def ptys() -> Iterator[list[Pty]]:
    """Every spawned CLI is killed at the end, even when the test fails half-way."""
    spawned: list[Pty] = []
    yield spawned
    for pty in spawned:
        pty.close()


def spawn(ptys: list[Pty], cli: Cli, *args: str) -> Pty:
    pty = cli.spawn(*args)
    ptys.append(pty)
    return pty


# --- the interactive session ---------------------------------------------------------------


def test_signup_then_chat_with_tools_tasks_and_history(cli: Cli, ptys: list[Pty]) -> None:
    signing_up = spawn(ptys, cli, "signup", "new-user@example.com")
    signing_up.expect("Password: ")
    signing_up.line(PASSWORD)
    signing_up.expect("Repeat password: ")
    signing_up.line(PASSWORD)
    signing_up.expect("Signed up as new-user@example.com")
    assert signing_up.finish() == EXIT_OK
    assert PASSWORD not in signing_up.transcript  # getpass turned echo off

    chat = spawn(ptys, cli, "chat")
    chat.expect("Connected to ")
    chat.prompt()
    chat.line("Add a task to buy groceries")
    if RULES:
        chat.expect(TOOL_LINE, regex=True)
    chat.expect("assistant: ")
    chat.prompt()
    chat.line("/tasks")
    chat.expect("Tasks (1):" if RULES else "No tasks.")
    if RULES:
        chat.expect("[ ] ")
        chat.expect("uy groceries")
    chat.prompt()
    chat.line("/history")
    chat.expect("you: Add a task to buy groceries")
    chat.expect("assistant: ")
    chat.prompt()
    chat.line("/new")
    chat.expect("Started a new conversation.")
    chat.prompt()
    chat.line("/history")
    chat.expect("No conversation yet")
    chat.prompt()
    chat.line("/quit")
    chat.expect("bye")
    assert chat.finish() == EXIT_OK
    assert PASSWORD not in chat.transcript


def test_ctrl_c_cancels_a_long_reply_and_the_session_goes_on(
    cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty]
) -> None:
    cli = Cli(server=cancellable_server.base_url, home=tmp_path)
    cli.save_login(user := signup(cancellable_server.base_url))
    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    chat.line(LONG_MESSAGE)
    chat.expect("assistant: Echo: Tell")  # the reply streams: its start shows long before its end
    chat.interrupt()
    chat.expect("(cancelled)")
    chat.prompt()
    chat.line("still there?")
    chat.expect("assistant: Echo: still there?")
    chat.prompt()
    chat.line("/history")
    chat.expect("(cancelled)")
    chat.prompt()
    chat.interrupt()  # idle: quits
    chat.expect("bye")
    assert chat.finish() == EXIT_OK

    history = cli.messages(user)
    cancelled = [m for m in history if m["role"] == "assistant" and m.get("status") == "cancelled"]
    assert len(cancelled) == 1
    assert LONG_MESSAGE.startswith(cancelled[0]["content"].removeprefix("Echo: "))


async def test_the_session_survives_a_server_restart(
    cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty]
) -> None:
    server = cancellable_server
    cli = Cli(server=server.base_url, home=tmp_path)
    cli.save_login(user := signup(server.base_url))
    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    chat.line("before the restart")
    chat.expect("assistant: Echo: before the restart")
    chat.prompt()
    try:
        await server.stop()  # SIGTERM: a graceful shutdown closes the socket with 1012
        chat.expect("connection lost")
        chat.line("typed while the server was down")
        chat.expect("will be sent once the connection is back")
    finally:
        await server.start()  # the same port and SQLite file (and the module's server again)
    chat.expect("reconnected", timeout=TIMEOUT * 2)
    chat.expect("assistant: Echo: typed while the server was down")
    chat.prompt()
    chat.line("after the restart")
    chat.expect("assistant: Echo: after the restart")
    chat.prompt()
    chat.child.sendeof()
    assert chat.finish() == EXIT_OK

    sent = [m["content"] for m in cli.messages(user) if m["role"] == "user"]
    assert sent == ["before the restart", "typed while the server was down", "after the restart"]


# --- reminders and due tasks ----------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def rest_call(server: str, user: RestUser, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method, f"{server}{path}", headers={"Authorization": f"Bearer {user.token}"}, timeout=TIMEOUT, **kwargs
    )
    assert response.is_success, response.text
    return response.json()


def in_new_york(moment: datetime) -> str:
    """How the CLI writes an instant in the account's zone: `Tue 3 Dec, 17:00`."""
    local = moment.astimezone(NEW_YORK)
    return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"


def test_a_reminder_prints_a_line_of_its_own_in_the_middle_of_a_streamed_reply(
    cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty]
) -> None:
    cli = Cli(server=cancellable_server.base_url, home=tmp_path)
    user = signup(cancellable_server.base_url)
    rest_call(cancellable_server.base_url, user, "PATCH", "/api/auth/me", json={"timezone": "America/New_York"})
    cli.save_login(user)
    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    message = LONG_MESSAGE * 3  # echoed 8 characters at a time: several seconds of streaming
    chat.line(message)
    chat.expect("assistant: Echo: Tell")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    remind_at = datetime.now(UTC) + timedelta(seconds=1)
    body = {"title": "Call the dentist", "due_at": due.isoformat(), "remind_at": remind_at.isoformat()}
    rest_call(cancellable_server.base_url, user, "POST", f"/api/{user.id}/tasks", json=body)

    line = f"⏰ Reminder: Call the dentist (due {in_new_york(due)})"
    chat.expect(line, timeout=TIMEOUT * 2)
    chat.prompt()  # the reply went on to its end
    reply = next(m["content"] for m in cli.messages(user) if m["role"] == "assistant")
    assert reply == f"Echo: {message.strip()}"
    transcript = chat.transcript.replace("\r\n", "\n")
    before, _, after = transcript.partition(line)
    assert before.endswith("\n") and after.startswith("\n"), "the reminder has a line of its own"
    # The streamed reply, put back together from both sides of the reminder, is the whole reply.
    streamed = re.findall(r"^assistant: (.*)$", transcript.split("you> ", 2)[1], flags=re.M)
    assert "".join(streamed) == reply
    assert after.lstrip("\n").startswith("assistant: "), "it came mid-reply: the reply carried on below it"
    chat.line("/quit")
    assert chat.finish() == EXIT_OK


def test_due_lists_what_is_due_in_the_next_24_hours_and_what_is_overdue(cli: Cli, ptys: list[Pty]) -> None:
    user = signup(cli.server)
    server = cli.server
    rest_call(server, user, "PATCH", "/api/auth/me", json={"timezone": "America/New_York"})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tasks = {
        "Pay the rent": now - timedelta(days=1),
        "Call the dentist": now + timedelta(hours=5),
        "Book flights": now + timedelta(days=3),  # later than 24 hours
        "Buy milk": now + timedelta(hours=1),  # completed below
        "Read a book": None,  # no due time
    }
    ids = {}
    for title, due in tasks.items():
        body = {"title": title, "due_at": due.isoformat() if due else None}
        ids[title] = rest_call(server, user, "POST", f"/api/{user.id}/tasks", json=body)["id"]
    rest_call(server, user, "PATCH", f"/api/{user.id}/tasks/{ids['Buy milk']}", json={"completed": True})
    cli.save_login(user)

    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    chat.line("/help")
    chat.expect("/due ")
    chat.prompt()
    chat.line("/due")
    chat.expect("Due in the next 24 hours or overdue (2):")
    rent = tasks["Pay the rent"]
    dentist = tasks["Call the dentist"]
    assert rent is not None and dentist is not None
    chat.expect(f"  {ids['Pay the rent']}. Pay the rent: overdue since {in_new_york(rent)}")
    chat.expect(f"  {ids['Call the dentist']}. Call the dentist: due {in_new_york(dentist)}")
    chat.prompt()
    listed = chat.transcript.split("Due in the next 24 hours")[1]
    assert "Book flights" not in listed and "Buy milk" not in listed and "Read a book" not in listed

    for title in ("Pay the rent", "Call the dentist"):
        rest_call(server, user, "PATCH", f"/api/{user.id}/tasks/{ids[title]}", json={"completed": True})
    chat.line("/due")
    chat.expect("Nothing due in the next 24 hours.")
    chat.prompt()
    chat.line("/quit")
    assert chat.finish() == EXIT_OK


# --- one-shot send -------------------------------------------------------------------------


def test_send_json(cli: Cli) -> None:
    cli.save_login(user := signup(cli.server))
    result = cli.run("send", "Add a task to buy groceries", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    reply = json.loads(result.stdout)
    assert reply["status"] == "done"
    assert reply["conversation_id"] >= 1 and reply["turn_id"]
    assert reply["response"]
    if RULES:
        assert [call["name"] for call in reply["tool_calls"]] == ["add_task"]
        task_id = reply["tool_calls"][0]["result"]["task_id"]
        assert [(t["id"], t["title"].lower()) for t in cli.tasks(user)] == [(task_id, "buy groceries")]
        assert [event["type"] for event in reply["events"]] == ["task.created"]
    else:
        assert reply["response"] == "Echo: Add a task to buy groceries"

    again = cli.run("send", "and one more thing", "--conversation", str(reply["conversation_id"]))
    assert again.returncode == EXIT_OK, again.stderr
    assert again.stdout.strip()
    assert cli.messages(user)[-1]["content"] == again.stdout.strip()


def test_send_ctrl_c_cancels_the_turn(cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty]) -> None:
    cli = Cli(server=cancellable_server.base_url, home=tmp_path)
    cli.save_login(signup(cancellable_server.base_url))
    sending = spawn(ptys, cli, "send", LONG_MESSAGE)
    sending.expect("Echo: Tell")  # streaming: the turn runs
    sending.interrupt()
    sending.expect("(cancelled)")
    assert sending.finish() == EXIT_TURN_CANCELLED


def test_send_to_a_missing_conversation(cli: Cli) -> None:
    cli.save_login(signup(cli.server))
    result = cli.run("send", "hello", "--conversation", "999999")
    assert result.returncode == EXIT_ERROR
    assert "error: Conversation not found" in result.stderr
    assert "Traceback" not in result.stderr


# --- errors --------------------------------------------------------------------------------


def test_wrong_password(cli: Cli, ptys: list[Pty]) -> None:
    user = signup(cli.server)
    login = spawn(ptys, cli, "login", user.email)
    login.expect("Password: ")
    login.line("not the password")
    login.expect("error: Incorrect email or password")
    assert login.finish() == EXIT_AUTH
    assert "not the password" not in login.transcript
    assert not (cli.config / "credentials.json").exists()


def test_unreachable_server(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cli = Cli(server=dead, home=tmp_path)
    login = cli.run("login", "someone@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert login.returncode == EXIT_ERROR
    assert login.stderr == f"error: cannot reach {dead}: is the server running?\n"

    cli.save_login(RestUser(id=1, email="someone@example.com", token="any"))
    for args in (("send", "hello"), ("chat",)):
        result = cli.run(*args)
        assert result.returncode == EXIT_ERROR, args
        assert f"error: cannot reach {dead}: is the server running?" in result.stderr
        assert "Traceback" not in result.stderr


def test_expired_token_that_cannot_be_refreshed(cli: Cli, ptys: list[Pty]) -> None:
    user = signup(cli.server)
    cli.save_login(user, token=access_token(user.id, user.session_id, seconds_left=-3600))

    result = cli.run("send", "hello")
    assert result.returncode == EXIT_AUTH
    assert "error: your session expired" in result.stderr
    assert "Traceback" not in result.stderr

    chat = spawn(ptys, cli, "chat")
    chat.expect("your session expired")
    chat.expect(f"Password for {user.email}")
    chat.line(PASSWORD)
    chat.prompt()
    chat.line("/tasks")
    chat.expect("No tasks.")
    chat.prompt()
    chat.line("/quit")
    assert chat.finish() == EXIT_OK
    assert PASSWORD not in chat.transcript
    # The new token was cached: a one-shot command works again.
    assert cli.run("send", "hello again").returncode == EXIT_OK


@pytest.mark.parametrize("seconds_left", [0, 2 * SCALE], ids=["before-connecting", "while-connected"])
def test_session_expiring_mid_chat_offers_to_log_in_again(
    cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty], seconds_left: float
) -> None:
    cli = Cli(server=cancellable_server.base_url, home=tmp_path)
    user = signup(cancellable_server.base_url)
    # Valid for a moment, and no refresh token: the server closes the socket with 4401 when it runs
    # out. However long the CLI takes to start and connect on this machine, it ends at the same
    # prompt: expired while connected, or already at the handshake (the server says "token expired"
    # either way); each case is also run on purpose.
    cli.save_login(user, token=access_token(user.id, user.session_id, seconds_left=seconds_left))
    chat = spawn(ptys, cli, "chat")
    chat.expect(r"your session expired \([Tt]oken expired\)", timeout=TIMEOUT + 2 * SCALE, regex=True)
    chat.expect(f"Password for {user.email}")
    chat.line(PASSWORD)
    chat.expect("reconnected|Connected to", regex=True)  # the socket is back (or up for the first time)
    chat.line("still me")
    chat.expect("assistant: Echo: still me")
    chat.prompt()
    chat.line("/quit")
    assert chat.finish() == EXIT_OK


def test_an_expired_access_token_is_refreshed_without_asking(cli: Cli, ptys: list[Pty]) -> None:
    user = signup(cli.server)
    expired = access_token(user.id, user.session_id, seconds_left=-60)
    cli.save_login(user, token=expired, refresh=True, expires_at=time.time() - 60)

    result = cli.run("send", "hello")  # refreshed before connecting
    assert result.returncode == EXIT_OK, result.stderr
    first = cli.saved_login()
    assert first is not None and first.token != expired and first.refresh_token not in (None, user.refresh_token)
    assert first.expires_at is not None and first.expires_at > time.time() + 60

    # Expired, but the client does not know when it expires: the socket is closed with 4401 "Token
    # expired" (and REST answers 401): the client refreshes and goes on, quietly.
    TokenStore(cli.config).save(Login(cli.server, user.email, user.id, expired, first.refresh_token, None))
    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    chat.line("/tasks")
    chat.expect("No tasks.")
    chat.prompt()
    chat.line("/quit")
    assert chat.finish() == EXIT_OK
    assert "expired" not in chat.transcript and "Password" not in chat.transcript


async def test_the_open_socket_is_refreshed_before_its_token_expires(
    cancellable_server: ServerProcess, tmp_path: Path, ptys: list[Pty]
) -> None:
    cli = Cli(server=cancellable_server.base_url, home=tmp_path)
    user = signup(cancellable_server.base_url)
    left = REST_MARGIN + 2  # connects with this token (no refresh first), which then runs out mid-chat
    cli.save_login(
        user,
        token=access_token(user.id, user.session_id, seconds_left=left),
        refresh=True,
        expires_at=time.time() + left,
    )
    first = cli.saved_login()
    started = time.monotonic()
    chat = spawn(ptys, cli, "chat")
    chat.prompt()
    chat.line("before")
    chat.expect("assistant: Echo: before")
    chat.prompt()
    # Refreshed before the token ran out (the cache file is the one sign of it outside the process).
    await wait_until(lambda: cli.saved_login() != first, timeout=left - (time.monotonic() - started), step=0.1)
    await asyncio.sleep(max(0.0, left + 1 - (time.monotonic() - started)))  # time passes the first token's expiry
    chat.line("after")
    chat.expect("assistant: Echo: after")
    chat.prompt()
    chat.line("/quit")
    assert chat.finish() == EXIT_OK
    assert "expired" not in chat.transcript and "reconnect" not in chat.transcript  # one socket throughout


def test_the_password_is_asked_only_when_the_session_is_gone(cli: Cli, ptys: list[Pty]) -> None:
    user = signup(cli.server)
    cli.save_login(user, refresh=True, expires_at=time.time() + 900)
    response = httpx.post(
        f"{cli.server}/api/auth/logout", headers={"Authorization": f"Bearer {user.token}"}, timeout=TIMEOUT
    )
    assert response.status_code == 204  # ended elsewhere (another device's "log out everywhere")
    chat = spawn(ptys, cli, "chat")
    chat.expect("your session expired (Session ended)")
    chat.expect(f"Password for {user.email}")
    chat.line(PASSWORD)
    chat.expect("Connected to")
    chat.line("/quit")
    assert chat.finish() == EXIT_OK
    login = cli.saved_login()
    assert login is not None and login.refresh_token and login.token != user.token


def test_logout_ends_the_session_on_the_server(cli: Cli) -> None:
    user = signup(cli.server)
    result = cli.run("login", user.email, "--password-stdin", stdin=PASSWORD + "\n")
    assert result.returncode == EXIT_OK
    login = cli.saved_login()
    assert login is not None
    headers = {"Authorization": f"Bearer {login.token}"}
    assert httpx.get(f"{cli.server}/api/auth/me", headers=headers, timeout=TIMEOUT).status_code == 200
    result = cli.run("logout")
    assert result.returncode == EXIT_OK and result.stdout == f"Logged out of {cli.server}.\n"
    assert httpx.get(f"{cli.server}/api/auth/me", headers=headers, timeout=TIMEOUT).status_code == 401
    assert cli.saved_login() is None
    assert cli.run("logout").stdout == f"Not logged in to {cli.server}.\n"


def test_token_cache_is_private(assistant_server: ServerProcess, tmp_path: Path) -> None:
    user = signup(assistant_server.base_url)
    cli = Cli(server=assistant_server.base_url, home=tmp_path)
    env = {k: v for k, v in cli.env.items() if k != "TODO_CHAT_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    result = cli.run("login", user.email, "--password-stdin", stdin=PASSWORD + "\n", env=env)
    assert result.returncode == EXIT_OK, result.stderr
    cache = tmp_path / "xdg" / "todo-chat" / "credentials.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert json.loads(cache.read_text())["logins"][assistant_server.base_url]["email"] == user.email

"""Driving the `chat-demo` CLI in tests: a private config directory, one-shot runs, pseudo-terminal sessions."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pexpect

from client_demo.config import Login, TokenStore
from server.assistant.factory import PROVIDERS
from tests.support.live import ServerProcess, free_port
from tests.support.settings import PASSWORD, server_env
from tests.support.timing import TIMEOUT

PROVIDER = "rules" if "rules" in PROVIDERS else "echo"
"""The offline rules agent calls tools; until it exists, the echo provider stands in."""

_SCRIPT = Path(sys.executable).with_name("chat-demo")
CHAT_DEMO = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "client_demo.cli"]
"""The installed console script (`pip install -e .`), else the module."""


def make_server(directory: Path, *, provider: str = PROVIDER, **env: object) -> ServerProcess:
    """A `python -m server` on a free port with its own SQLite file, run from `directory` (no stray .env)."""
    directory.mkdir(parents=True, exist_ok=True)
    return ServerProcess(
        port=free_port(),
        env=server_env(
            database_url=f"sqlite+aiosqlite:///{directory / 'chat.db'}",
            assistant_provider=provider,
            SERVER_CWD=str(directory),
            **env,
        ),
        log_path=directory / "server.log",
    )


@dataclass
class RestUser:
    id: int
    email: str
    token: str
    password: str = PASSWORD
    refresh_token: str | None = None
    session_id: str = ""


def signup(base_url: str) -> RestUser:
    """A fresh account made over REST, for tests about something other than signing up."""
    email = f"cli-{secrets.token_hex(5)}@example.com"
    response = httpx.post(f"{base_url}/api/auth/signup", json={"email": email, "password": PASSWORD}, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    body = response.json()
    return RestUser(
        id=int(body["id"]),
        email=email,
        token=body["token"],
        refresh_token=body["refresh_token"],
        session_id=body["session_id"],
    )


@dataclass
class Pty:
    """One CLI process on a pseudo-terminal, with everything it printed."""

    child: pexpect.spawn
    log: io.StringIO = field(default_factory=io.StringIO)

    @property
    def transcript(self) -> str:
        return self.log.getvalue()

    def expect(self, pattern: str, *, timeout: float = TIMEOUT, regex: bool = False) -> Any:
        """Wait for `pattern` (literal text unless `regex`); the match object or text."""
        try:
            if regex:
                self.child.expect(pattern, timeout=timeout)
            else:
                self.child.expect_exact(pattern, timeout=timeout)
        except (pexpect.TIMEOUT, pexpect.EOF) as exc:
            raise AssertionError(f"{pattern!r} never came; transcript:\n{self.transcript}") from exc
        return self.child.match

    def prompt(self) -> None:
        self.expect("you> ")

    def line(self, text: str) -> None:
        self.child.sendline(text)

    def interrupt(self) -> None:
        self.child.sendintr()

    def finish(self, *, timeout: float = TIMEOUT) -> int:
        """Wait for the process to exit; its exit code."""
        self.expect_eof(timeout=timeout)
        self.child.close()
        status = self.child.exitstatus
        assert status is not None, f"killed by signal {self.child.signalstatus}; transcript:\n{self.transcript}"
        return int(status)

    def expect_eof(self, *, timeout: float = TIMEOUT) -> None:
        try:
            self.child.expect(pexpect.EOF, timeout=timeout)
        except pexpect.TIMEOUT as exc:
            raise AssertionError(f"the CLI did not exit; transcript:\n{self.transcript}") from exc

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@dataclass
class Cli:
    """`chat-demo` pointed at one server, with a token cache of its own (never the user's)."""

    server: str
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "config"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TODO_CHAT_") and k != "XDG_CONFIG_HOME"}
        env.update(
            HOME=str(self.home),
            TODO_CHAT_CONFIG=str(self.config),
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        return env

    def argv(self, *args: str) -> list[str]:
        return [*CHAT_DEMO, "--server", self.server, *args]

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = TIMEOUT * 2
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args),
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=env or self.env,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> Pty:
        argv = self.argv(*args)
        child = pexpect.spawn(
            argv[0], argv[1:], env=env or self.env, encoding="utf-8", timeout=TIMEOUT, dimensions=(50, 200)
        )
        pty = Pty(child)
        child.logfile_read = pty.log  # what the terminal shows; what is typed appears only if echoed
        return pty

    def save_login(
        self, user: RestUser, *, token: str | None = None, refresh: bool = False, expires_at: float | None = None
    ) -> None:
        """Cache a login as `chat-demo login` would; without `refresh`, one that cannot be refreshed."""
        login = Login(
            self.server, user.email, user.id, token or user.token, user.refresh_token if refresh else None, expires_at
        )
        TokenStore(self.config).save(login)

    def saved_login(self) -> Login | None:
        return TokenStore(self.config).get(self.server)

    def tasks(self, user: RestUser) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.server}/api/{user.id}/tasks", headers={"Authorization": f"Bearer {user.token}"}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def messages(self, user: RestUser) -> list[dict[str, Any]]:
        """Every message of the user's newest conversation, oldest first."""
        headers = {"Authorization": f"Bearer {user.token}"}
        conversations = httpx.get(f"{self.server}/api/{user.id}/conversations", headers=headers, timeout=TIMEOUT)
        newest = conversations.json()["data"][0]["id"]
        response = httpx.get(
            f"{self.server}/api/{user.id}/conversations/{newest}/messages", headers=headers, timeout=TIMEOUT
        )
        data: list[dict[str, Any]] = response.json()["data"]
        return data

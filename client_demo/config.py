"""The token cache: one login per server (its access and refresh tokens), in a private file under the user's config
directory.

Where it lives, first match wins: `--config DIR`, `$TODO_CHAT_CONFIG`, `$XDG_CONFIG_HOME/todo-chat`,
`~/.config/todo-chat` (the XDG Base Directory default). The directory is created 0700 and the file
is written 0600 through a private temporary file and an atomic rename, so a token is never
readable by other users, not even for an instant, and never half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

APP_DIR = "todo-chat"
CREDENTIALS_FILE = "credentials.json"
DEFAULT_SERVER = "http://127.0.0.1:8000"


def config_dir(override: str | None = None, *, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if override:
        return Path(override).expanduser()
    if env.get("TODO_CHAT_CONFIG"):
        return Path(env["TODO_CHAT_CONFIG"]).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / APP_DIR


def normalize_server(url: str) -> str:
    """`localhost:8000` -> `http://localhost:8000`; no trailing slash, so one server has one key."""
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


@dataclass(frozen=True, slots=True)
class Login:
    server: str
    email: str
    user_id: int
    token: str
    """The access token."""
    refresh_token: str | None = None
    """Exchanged for new tokens before `token` expires; None for a login that cannot be refreshed."""
    expires_at: float | None = None
    """When `token` expires (Unix time), if known."""

    @classmethod
    def from_auth(cls, server: str, body: dict[str, Any], *, now: float) -> Login:
        """From a signup, login or refresh response."""
        expires_in = body.get("expires_in")
        return cls(
            server=server,
            email=str(body["email"]),
            user_id=int(body["id"]),
            token=str(body["token"]),
            refresh_token=str(body["refresh_token"]) if body.get("refresh_token") else None,
            expires_at=now + float(expires_in) if isinstance(expires_in, (int, float)) else None,
        )


class TokenStore:
    """`credentials.json`: `{"default": server, "logins": {server: {email, user_id, token, refresh_token,
    expires_at}}}`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CREDENTIALS_FILE

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # unreadable or corrupt: as if logged out; the next login rewrites it
        return data if isinstance(data, dict) else {}

    def default_server(self) -> str:
        server = self._read().get("default")
        return server if isinstance(server, str) and server else DEFAULT_SERVER

    def get(self, server: str) -> Login | None:
        entry = self._read().get("logins", {}).get(server)
        if not isinstance(entry, dict):
            return None
        try:
            refresh = entry.get("refresh_token")
            expires = entry.get("expires_at")
            return Login(
                server=server,
                email=str(entry["email"]),
                user_id=int(entry["user_id"]),
                token=str(entry["token"]),
                refresh_token=refresh if isinstance(refresh, str) and refresh else None,
                expires_at=float(expires) if isinstance(expires, (int, float)) else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    def save(self, login: Login) -> None:
        """Remember `login` and make its server the default for later commands."""
        data = self._read()
        logins = data.get("logins")
        logins = logins if isinstance(logins, dict) else {}
        entry = asdict(login)
        del entry["server"]
        data.update(default=login.server, logins={**logins, login.server: entry})
        self._write(data)

    def delete(self, server: str) -> bool:
        data = self._read()
        logins = data.get("logins")
        if not isinstance(logins, dict) or server not in logins:
            return False
        del logins[server]
        self._write(data)
        return True

    def _write(self, data: dict[str, Any]) -> None:
        if not self.directory.exists():
            self.directory.mkdir(parents=True, mode=0o700)
            self.directory.chmod(0o700)  # mkdir's mode is filtered by the umask
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left over by a crashed run that had our pid
        # O_EXCL + 0600 from the start: the token is never in a file others can read.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2)
                handle.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise

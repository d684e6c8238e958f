"""What can go wrong in the demo client, each with the one-line message the user sees.

```
ClientError                  message, exit_code
├── ServerUnreachableError   connection refused, DNS, timeout: "cannot reach URL: is the server running?"
├── AuthFailedError          wrong email or password, an account that already exists
├── NotLoggedInError         no token cached for this server
├── SessionExpiredError      REST 401 or WebSocket close 4401: the token is expired or invalid
├── RequestFailedError       any other refusal by the server (HTTP 4xx/5xx, handshake refused)
└── QuitError                the user asked to quit (Ctrl-C) before the work was done
```

The CLI catches `ClientError` at its edge, prints `message` and exits with `exit_code`:
no traceback reaches the user.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
"""The server is unreachable or refused a request."""
EXIT_USAGE = 2
"""argparse's own code for bad command lines."""
EXIT_AUTH = 3
"""Not logged in, wrong password, or the session expired."""
EXIT_TURN_FAILED = 4
EXIT_TURN_CANCELLED = 5
EXIT_INTERRUPTED = 130
"""Quit with Ctrl-C before the work was done (128 + SIGINT, the shell convention)."""


class ClientError(Exception):
    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerUnreachableError(ClientError):
    def __init__(self, server: str) -> None:
        super().__init__(f"cannot reach {server}: is the server running?")
        self.server = server


class AuthFailedError(ClientError):
    exit_code = EXIT_AUTH


class NotLoggedInError(ClientError):
    exit_code = EXIT_AUTH

    def __init__(self, server: str) -> None:
        super().__init__(f"not logged in to {server}: run `chat-demo login` (or `chat-demo signup`) first")


class SessionExpiredError(ClientError):
    exit_code = EXIT_AUTH

    def __init__(self, detail: str = "") -> None:
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"your session expired{suffix}: run `chat-demo login` again")
        self.detail = detail


class RequestFailedError(ClientError):
    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class QuitError(ClientError):
    exit_code = EXIT_INTERRUPTED

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)

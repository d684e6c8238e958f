"""Where test servers get their settings: in this process (`make_settings`) or as an environment (`server_env`)."""

from __future__ import annotations

from typing import Any

from server.settings import Settings

JWT_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
"""Every test user's password (long enough for the password policy)."""

DEFAULTS: dict[str, Any] = {
    "jwt_secret": JWT_SECRET,
    "bcrypt_rounds": 4,  # signup speed is not what the tests measure
    "environment": "development",
    "log_level": "warning",
    "auto_migrate": True,
    "assistant_provider": "echo",
    "echo_chunk_delay": 0.005,  # turns of long messages last long enough to cancel or interrupt
    "ws_auth_timeout": 1.0,
    "shutdown_grace": 1.0,  # a test server stops promptly even with a long turn running
    # The suite signs up, logs in and chats far more than a person: its limits tests lower these.
    "rate_limit_login_account": "10000/minute",
    "rate_limit_login_ip": "10000/minute",
    "rate_limit_login_attempts_ip": "10000/minute",
    "rate_limit_signup_ip": "10000/minute",
    "rate_limit_chat_turns": "10000/minute",
    "rate_limit_tool_calls": "10000/minute",
    "rate_limit_destructive_calls": "10000/minute",
    "login_known_client_days": 0.01,  # its Redis keys live that long (about 15 min), not 30 days, in a shared Redis
}


def make_settings(**overrides: Any) -> Settings:
    """Settings for an app in this process; nothing is read from the environment or a `.env`."""
    return Settings(_env_file=None, **{**DEFAULTS, **overrides})


def server_env(**overrides: Any) -> dict[str, str]:
    """The same defaults as environment variables, for `python -m server` in a subprocess.

    Keys are setting names (`database_url=...`); extra keys already in upper case pass through
    (`SERVER_CWD`, read by `ServerProcess`).
    """
    values = {**DEFAULTS, **overrides}
    env: dict[str, str] = {}
    for name, value in values.items():
        if not name.isupper() and name not in Settings.model_fields:
            raise TypeError(f"{name!r} is not a setting")
        if value is None:
            continue
        key = name if name.isupper() else name.upper()
        if isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, list):
            env[key] = ",".join(map(str, value))
        else:
            env[key] = str(value)
    return env

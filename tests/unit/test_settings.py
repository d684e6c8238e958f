"""Settings: production refuses weak secrets; development keeps a generated one in a private file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("secret", [None, "short", "changeme", "secret"])
def test_production_refuses_weak_or_missing_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        settings(environment="production", jwt_secret=secret)


def test_production_refuses_low_bcrypt_cost() -> None:
    with pytest.raises(ValidationError, match="BCRYPT_ROUNDS"):
        settings(environment="production", jwt_secret="k" * 40, bcrypt_rounds=10)


def test_production_accepts_strong_settings() -> None:
    assert settings(environment="production", jwt_secret="k" * 40).bcrypt_rounds == 12


def test_development_generates_and_keeps_a_private_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = settings().resolve_jwt_secret()
    second = settings().resolve_jwt_secret()
    assert first == second and len(first) >= 32
    mode = stat.S_IMODE(os.stat(tmp_path / ".jwt_secret").st_mode)
    assert mode == 0o600
    assert list(tmp_path.iterdir()) == [tmp_path / ".jwt_secret"]  # no temporary file left behind


def test_cors_origins_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example/")
    assert Settings(_env_file=None).cors_origins == ["https://a.example", "https://b.example"]


def test_cors_wildcard_is_refused() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        settings(cors_origins="*")


def test_migrate_on_start_defaults_by_backend() -> None:
    assert settings().should_migrate is True
    assert settings(database_url="postgresql+asyncpg://db/x").should_migrate is False
    assert settings(database_url="postgresql+asyncpg://db/x", auto_migrate=True).should_migrate is True


def test_rate_limits_in_limits_notation_and_a_typo_fails_at_start_up() -> None:
    assert settings(rate_limit_chat_turns="10 per 2 minutes").rate_limit_chat_turns == "10 per 2 minutes"
    with pytest.raises(ValidationError, match="rate_limit_login_account"):
        settings(rate_limit_login_account="5 a minute")


def test_trusted_proxies_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings().trusted_proxies == []  # by default nobody's X-Forwarded-For is believed
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")
    assert Settings(_env_file=None).trusted_proxies == ["10.0.0.0/8", "127.0.0.1", "::1"]


@pytest.mark.parametrize("value", ["*", "proxy.internal", "10.0.0.0/33"])
def test_trusted_proxies_must_be_addresses(value: str) -> None:
    with pytest.raises(ValidationError, match="TRUSTED_PROXIES"):
        settings(trusted_proxies=value)

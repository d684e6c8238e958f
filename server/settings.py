"""Configuration read from the environment (and an optional `.env`); never instantiated at import time."""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated, Literal

from limits import parse as parse_rate
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./todo_chat.db"
DEV_SECRET_FILE = ".jwt_secret"  # noqa: S105  # nosec B105  # a file name, not a secret
MIN_SECRET_LENGTH = 32
#: Secrets that appear in tutorials and .env examples; refusing them is cheap insurance.
WEAK_SECRETS = frozenset({"secret", "changeme", "change-me", "your-secret-key", "jwt_secret", "development"})


class Settings(BaseSettings):
    """Every knob of the service. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    """Unset means the in-process broker and locks: one worker only."""
    redis_prefix: str = "todochat"
    """Namespace of every Redis key and channel, so deployments can share a Redis."""
    redis_cluster: bool = False
    """REDIS_URL names one node of a Redis Cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE), cluster limits."""

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = Field("todo-chat", min_length=1)
    """`iss` of every token; a token issued elsewhere (another service sharing the secret) is refused."""
    jwt_audience: str = Field("todo-chat", min_length=1)
    """`aud` of every token: the service it is for."""
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    """Lifetime of an access token; clients refresh before it runs out."""
    refresh_token_days: float = Field(30.0, gt=0, le=365)
    """Lifetime of a refresh token; each refresh issues a new one, so a session used this often lives on
    until SESSION_MAX_DAYS."""
    session_max_days: float = Field(30.0, gt=0, le=3650)
    """A session's absolute lifetime, from its login: past it, refresh answers 401 and its access tokens
    have stopped; the user logs in again, however often the session was used."""
    refresh_leeway_seconds: float = Field(10.0, ge=0, le=300)
    """A refresh token presented again this soon after it was rotated (two tabs racing) is refused
    without ending the session; later, its reuse ends the session."""
    session_cache_seconds: float = Field(30.0, gt=0, le=3600)
    """How long a worker trusts what it knows of a session (alive or ended) without asking the database:
    the bound on how late a missed end-of-session message (a Redis outage) takes effect."""
    session_cache_size: int = Field(10_000, ge=1)
    """Sessions remembered per worker."""
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    """Cost 12 or more in production; tests lower it to stay fast."""
    bcrypt_workers: int | None = Field(None, ge=1)
    """Threads that hash passwords. Unset: one per core but one, at least one, so the event loop keeps a core."""
    bcrypt_queue: int = Field(16, ge=0)
    """Hashes that may wait for a thread; past that, signup and login answer 429 at once instead of queueing."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated origins allowed for CORS and for browser WebSocket connections."""

    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(10.0, gt=0)
    auto_migrate: bool | None = None
    """Apply migrations at start-up. Unset: yes on SQLite (embedded default), no elsewhere (release step)."""

    demo_page: bool = True
    """Serve the chat widget at /widget/ and its demo page at /."""
    api_docs: bool | None = None
    """Serve /docs, /redoc and /openapi.json. Unset: yes in development, no in production."""
    hsts_max_age: int = Field(0, ge=0)
    """Seconds of `Strict-Transport-Security` (with includeSubDomains) once the service is reached
    only over HTTPS (a TLS-terminating proxy); 0 sends none."""
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    """Largest HTTP request body; larger ones get 413 `too_large` before they are read."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] | None = None
    """One JSON object per line, or a readable console format. Unset: json in production, console otherwise."""

    metrics_token: SecretStr | None = Field(None, min_length=16)
    """Bearer token `/metrics` on the service's port requires. Unset: `/metrics` is served there only in
    development (in production it is 404; scrape METRICS_PORT instead)."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """`python -m server` serves `/metrics` on this port of METRICS_HOST, from its supervising process, for
    every worker, without a token: bind it where only the scraper reaches. Unset: no separate listener."""
    metrics_host: str = "127.0.0.1"

    # WebSocket limits; see docs/protocol.md.
    ws_auth_timeout: float = Field(5.0, gt=0)
    ws_idle_timeout: float = Field(300.0, gt=0)
    ws_ping_interval: float = Field(20.0, gt=0)
    ws_ping_timeout: float = Field(20.0, gt=0)
    ws_max_frame_bytes: int = Field(128 * 1024, ge=1024)
    """Larger text frames get an `error` frame; the connection stays open."""
    ws_max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Hard protocol limit enforced by uvicorn: larger frames close the socket with 1009."""
    ws_compression: bool = False
    """permessage-deflate. Off: it keeps ~100 KB of zlib state per socket and costs CPU per frame,
    while our frames are small JSON."""
    ws_max_per_user: int = Field(32, ge=1)
    """Sockets one user may hold on one worker; more are closed with 4429."""
    ws_send_queue: int = Field(1024, ge=8)
    """Events buffered per socket before it counts as a slow consumer and is closed."""
    ws_rate_per_second: float = Field(20.0, gt=0)
    ws_rate_burst: int = Field(40, ge=1)
    resume_max_events: int = Field(5000, ge=1)
    """A resume that would replay more than this gets `resync_required` instead."""
    event_retention_hours: float = Field(72.0, gt=0)

    turn_timeout: float = Field(300.0, gt=0)
    max_turns_in_flight: int = Field(256, ge=1)
    """Turns one worker runs at once, from the accepted message to the persisted reply; more are
    refused at once with `overloaded` (admission control: overload sheds instead of collapsing)."""
    max_concurrent_turns: int = Field(3, ge=1)
    """Turns one user may have running at once, across every worker (the database counts them)."""
    worker_heartbeat: float = Field(1.0, gt=0)
    """How often a worker renews its lease (and saves the partial replies of its longer turns)."""
    worker_lease: float = Field(5.0, gt=0)
    """A worker not heard from for this long is taken for dead: its turns end as `interrupted`."""
    turn_pool_size: int = Field(8, ge=1)
    """Connections of the turn's hot path (asyncpg, PostgreSQL only), per worker, beside the DB pool."""
    turn_statement_timeout: float = Field(10.0, gt=0)
    """PostgreSQL cancels a turn statement running longer (a row lock held elsewhere): one worker's
    writes go one round at a time, so a stuck round must not hold the others forever."""
    db_prepared_statements: bool = True
    """Server-side prepared statements. Off behind a PgBouncer in transaction mode (without its
    prepared-statement support), where a statement may land on another server connection."""
    reminder_poll_seconds: float = Field(1.0, gt=0, le=60)
    """The longest a worker's reminder scheduler sleeps between looks at the database. It sleeps until the
    earliest pending reminder and wakes when one is set over REST on its worker, so this bounds only how
    late a reminder set elsewhere (another worker, a tool call), due sooner than that, can fire."""
    reminder_batch: int = Field(500, ge=1, le=10_000)
    """Reminders (and users) one scheduler transaction fires at most; more due ones go in the next."""
    shutdown_grace: float = Field(10.0, ge=0)
    """Seconds running turns get to finish on shutdown before they are cancelled and persisted."""

    assistant_provider: Literal["auto", "rules", "openai", "echo"] = "auto"
    """auto: `openai` when LLM_BASE_URL is set, else the offline `rules` agent. `echo` repeats (benchmarks)."""
    echo_chunk_delay: float = Field(0.0, ge=0)
    agent_max_steps: int = Field(6, ge=1, le=20)

    # The assistant's model server (OpenAI-compatible). Unset: the offline rules agent.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None
    llm_timeout: float = Field(60.0, gt=0)
    """Longest wait for the model server to connect (at most 10 s), answer and send its first chunk."""
    llm_idle_timeout: float = Field(10.0, gt=0)
    """Longest silence between two chunks of a reply; TURN_TIMEOUT bounds the whole turn."""
    llm_max_retries: int = Field(2, ge=0, le=10)
    """Retries of a model call that failed before any of its text streamed (connection, timeout, 408/409/429/5xx)."""
    llm_retry_backoff: float = Field(0.5, gt=0)
    """Seconds before the first retry; doubles with each failure without a Retry-After (less up to a quarter)."""
    llm_retry_backoff_max: float = Field(8.0, gt=0)
    """The longest backoff between two attempts (a longer Retry-After, up to 20 s, is still honoured)."""
    history_messages: int = Field(30, ge=1)

    # Abuse limits, in the `limits` library's notation ("5/minute", "20 per 10 minutes"); see README.
    rate_limit_login_account: str = "5/minute"
    """Failed logins per account (a client that signed in to it recently is exempt, see README)."""
    rate_limit_login_ip: str = "20/minute"
    """Failed logins per client IP, over all accounts."""
    rate_limit_login_attempts_ip: str = "60/minute"
    """Logins per client IP, failed or not."""
    rate_limit_signup_ip: str = "20/hour"
    rate_limit_chat_turns: str = "30/minute"
    """Chat turns per user, REST and WebSocket together, across every worker."""
    rate_limit_tool_calls: str = "120/minute"
    """Per user: REST task changes and every tool call of the assistant and of MCP, together."""
    rate_limit_destructive_calls: str = "30/minute"
    """Of those, deletions (tasks and conversations): a lower budget of their own."""
    login_known_client_days: float = Field(30.0, gt=0)
    """How long an account + client IP that logged in keeps its exemption from the per-account limit."""
    rate_limit_timeout: float = Field(0.1, gt=0, le=5)
    """Seconds one rate-limit storage call may take; slower or failing calls are skipped (see README)."""
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client. Default: none."""

    @field_validator(
        "rate_limit_login_account",
        "rate_limit_login_ip",
        "rate_limit_login_attempts_ip",
        "rate_limit_signup_ip",
        "rate_limit_chat_turns",
        "rate_limit_tool_calls",
        "rate_limit_destructive_calls",
    )
    @classmethod
    def _rate_notation(cls, value: str) -> str:
        parse_rate(value)  # a typo fails at start-up, not at the first login
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            # uvicorn would take "*" (trust everyone) and hostnames; a client could then claim any IP.
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"TRUSTED_PROXIES entries must be IP addresses or CIDR networks, got {item!r}"
                ) from None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard(cls, value: list[str]) -> list[str]:
        # Credentialed CORS with "*" would let any site act as the user (Fetch spec forbids it too).
        if "*" in value:
            raise ValueError("CORS_ORIGINS may not contain '*': list the allowed origins")
        return value

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> Settings:
        if self.redis_cluster and not (self.redis_url or "").startswith(("redis://", "rediss://")):
            raise ValueError("REDIS_CLUSTER=true needs REDIS_URL to name one node: redis://host:port or rediss://")
        if self.redis_cluster and "{" in self.redis_prefix:
            raise ValueError("REDIS_PREFIX may not contain '{' with REDIS_CLUSTER: it would change the hash tags")
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.environment != "production":
            return self
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in WEAK_SECRETS:
            raise ValueError(f"JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} random characters in production")
        if self.bcrypt_rounds < 12:
            raise ValueError("BCRYPT_ROUNDS must be at least 12 in production")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.environment == "production" else "console"

    @property
    def serve_api_docs(self) -> bool:
        return self.environment != "production" if self.api_docs is None else self.api_docs

    @property
    def should_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    def resolve_jwt_secret(self) -> str:
        """The signing secret; in development one is generated once and kept in a local file."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = Path(DEV_SECRET_FILE)
        if path.exists():
            return path.read_text().strip()
        # Write a private temporary file, then link it into place: link() fails if another worker
        # won the race, and then everyone reads the winner's secret. Never a half-written file.
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
            logger.warning("JWT_SECRET is not set: generated a development secret in %s", path.resolve())
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path.read_text().strip()

"""The tables. The Alembic migrations create exactly these (checked by a test)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from server.recurrence import RULE_MAX

# Named constraints, so migrations can refer to them on every backend (Alembic's recommendation).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


TITLE_MAX = 200
DESCRIPTION_MAX = 1000
TIMEZONE_MAX = 64
TAG_MAX = 32
TAGS_MAX = 10
PRIORITIES = ("low", "normal", "high")
"""Stored as their index (0, 1, 2), so that an index sorts tasks by priority."""


#: SQLite otherwise reuses the highest id after it is deleted: "task 7" must never name two tasks.
NEVER_REUSE_IDS = {"sqlite_autoincrement": True}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, also on SQLite, which stores no offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def _timestamp() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _owner_fk(table: str) -> Any:
    return Field(sa_column=Column(Integer, ForeignKey(f"{table}.id", ondelete="CASCADE"), nullable=False))


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, nullable=False)
    """Stored lower-cased, so uniqueness is case-insensitive."""
    password_hash: str = Field(max_length=255, nullable=False)
    created_at: datetime = _timestamp()
    last_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    """The user's event sequence: bumped in the transaction that writes each event, so it is gap-free."""
    running_turns: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    """How many of the user's turns are running (rows in `turns`): kept with them, under the user's row lock,
    so the limit on concurrent turns holds exactly across every worker."""
    timezone: str = Field(default="UTC", sa_column=Column(String(TIMEZONE_MAX), nullable=False, server_default="UTC"))
    """An IANA zone name: where "tomorrow" and "9:00" are, and what repeating tasks keep their local time in."""


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_completed", "user_id", "completed"),
        Index("ix_tasks_user_created", "user_id", "created_at"),
        Index("ix_tasks_user_due", "user_id", "due_at"),
        Index("ix_tasks_user_priority", "user_id", "priority"),
        # The reminder scheduler's scan: only tasks with a reminder pending are in it.
        Index(
            "ix_tasks_remind_at",
            "remind_at",
            "user_id",
            postgresql_where=text("remind_at IS NOT NULL"),
            sqlite_where=text("remind_at IS NOT NULL"),
        ),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _owner_fk("users")
    title: str = Field(max_length=TITLE_MAX, nullable=False)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)
    completed: bool = Field(default=False, nullable=False)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    priority: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    """The index of one of `PRIORITIES`: 0 low, 1 normal, 2 high."""
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]"))
    """The task's tags, normalised and sorted, as the task is read; `task_tags` indexes them for filtering."""
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    remind_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    """The pending reminder: cleared when it fires (or is dismissed), set again by a snooze."""
    remind_lead: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    """Seconds from the reminder to the due time when the reminder was set, so the next occurrence of a
    repeating task is reminded as long before it is due. Kept when the reminder fires."""
    recurrence: str | None = Field(default=None, max_length=RULE_MAX)
    """A normalised RRULE (server/recurrence.py); anchored on `due_at`, which it requires."""


class _SearchDocument(ColumnElement[Any]):
    """What task search looks through: title and description (the `search` column's generation expression)."""

    inherit_cache = True


@compiles(_SearchDocument, "postgresql")
def _search_document_postgresql(element: _SearchDocument, compiler: SQLCompiler, **kw: Any) -> str:
    # 'english': stemming finds "reports" for "report" and drops stop words from a query like "the report".
    return "to_tsvector('english', title || ' ' || coalesce(description, ''))"


@compiles(_SearchDocument)
def _search_document(element: _SearchDocument, compiler: SQLCompiler, **kw: Any) -> str:
    # Elsewhere (SQLite) the fallback searches words in the lower-cased text with LIKE.
    return "lower(title || ' ' || coalesce(description, ''))"


TASKS: Table = Task.__table__  # type: ignore[attr-defined]  # set by SQLModel for table=True models
# Generated by the database and never loaded into `Task` objects (added after mapping, so the ORM
# leaves it alone): a tsvector with a GIN index on PostgreSQL, lower-cased text on SQLite.
TASK_SEARCH = Column(
    "search", TSVECTOR().with_variant(Text(), "sqlite"), Computed(_SearchDocument(), persisted=True), nullable=True
)
TASKS.append_column(TASK_SEARCH)
# A GIN index serves `@@` on PostgreSQL. SQLite has none: its search is `LIKE '%word%'`, which no
# B-tree can serve, so an index there would only cost writes.
Index("ix_tasks_search", TASK_SEARCH, postgresql_using="gin").ddl_if(dialect="postgresql")
# Sorting by title is case-insensitive (`lower(title)`): the index holds the expression itself.
Index("ix_tasks_user_title", TASKS.c.user_id, func.lower(TASKS.c.title))


class TaskTag(SQLModel, table=True):
    """One tag of one task: filtering by tag is a lookup in (user_id, tag) on every backend.

    A table rather than an array column, because the same index then serves PostgreSQL and SQLite
    alike (an array's GIN index exists only on PostgreSQL). The task row keeps a copy (`Task.tags`)
    so that reading tasks needs no join; both are written together (server/db/tags.py).
    """

    __tablename__ = "task_tags"
    __table_args__ = (Index("ix_task_tags_user_tag", "user_id", "tag", "task_id"),)

    task_id: int = Field(
        sa_column=Column(Integer, ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    )
    tag: str = Field(sa_column=Column(String(TAG_MAX), primary_key=True))
    user_id: int = _owner_fk("users")


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = _owner_fk("users")
    title: str = Field(default="", max_length=200, nullable=False)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    """Last activity: the conversation list is ordered by it."""


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_created", "conversation_id", "created_at"),
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        Index("ix_messages_turn", "turn_id"),
        # Idempotency: a retried `chat` frame carries the same client_msg_id (NULLs never collide).
        UniqueConstraint("user_id", "client_msg_id", name="uq_messages_user_client_msg"),
        NEVER_REUSE_IDS,
    )

    ROLES: ClassVar[tuple[str, ...]] = ("user", "assistant", "tool")

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = _owner_fk("conversations")
    user_id: int = _owner_fk("users")
    role: str = Field(max_length=16, nullable=False)
    content: str = Field(sa_column=Column(Text, nullable=False))
    """User input is limited to 10,000 characters at the edge; replies and tool results may be longer."""
    status: str | None = Field(default=None, max_length=16)
    """For assistant replies: done, cancelled, failed or interrupted (a partial reply is kept)."""
    client_msg_id: str | None = Field(default=None, max_length=64)
    turn_id: str | None = Field(default=None, max_length=32)
    """The turn a user message started, or the turn an assistant or tool message belongs to."""
    tool_call: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """For role=tool: {"id", "name", "arguments", "result"}."""
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    """The seq of this message's `message` event, so a retried chat frame gets the same ack."""
    created_at: datetime = _timestamp()


class Event(SQLModel, table=True):
    """The per-user event log that `resume` replays: one row per persisted WebSocket event."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_created", "created_at"),)

    user_id: int = Field(
        sa_column=Column(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    )
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(sa_column=Column(String(32), nullable=False))
    frame: str = Field(sa_column=Column(Text, nullable=False))
    """The event's JSON frame exactly as sent live, seq included, so replay sends it verbatim."""
    created_at: datetime = _timestamp()


class Turn(SQLModel, table=True):
    """A running turn: the row exists from the accepted user message until the reply is persisted.

    The database, not Redis, decides whether a conversation is busy: one row per conversation at
    most (a unique key), claimed in the statement that stores the user's message. `worker_id` names
    the worker whose lease keeps the turn alive; when that lease runs out, any live worker ends the
    turn as `interrupted` with `partial_reply`, the text checkpointed so far.
    """

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_worker", "worker_id"),)

    turn_id: str = Field(sa_column=Column(String(32), primary_key=True))
    user_id: int = _owner_fk("users")
    conversation_id: int = Field(
        sa_column=Column(Integer, ForeignKey("conversations.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    client_msg_id: str = Field(sa_column=Column(String(64), nullable=False))
    message_id: int = Field(sa_column=Column(Integer, nullable=False))
    """The user message that started the turn; with `seq`, what a retry's ack needs."""
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    worker_id: str = Field(sa_column=Column(String(64), nullable=False))
    started_at: datetime = _timestamp()
    partial_reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Worker(SQLModel, table=True):
    """A live worker process, as long as it keeps renewing `heartbeat_at` (its lease)."""

    __tablename__ = "workers"

    id: str = Field(sa_column=Column(String(64), primary_key=True))
    started_at: datetime = _timestamp()
    heartbeat_at: datetime = _timestamp()


SESSION_ID_MAX = 64
DEVICE_MAX = 100


class UserSession(SQLModel, table=True):
    """One login on one device: what an access token's `sid` names. Deleting it ends the login everywhere."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_id", "user_id"),)

    id: str = Field(sa_column=Column(String(SESSION_ID_MAX), primary_key=True))
    """Random and unguessable (`secrets.token_urlsafe`), though never enough alone: tokens are signed."""
    user_id: int = _owner_fk("users")
    device: str = Field(default="", sa_column=Column(String(DEVICE_MAX), nullable=False))
    created_at: datetime = _timestamp()
    last_used_at: datetime = _timestamp()
    """Updated on refresh and socket connect, and from requests at most about once a minute."""


class RefreshToken(SQLModel, table=True):
    """A refresh token ever issued for a session, by hash: the current one, and rotated ones to detect reuse."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_session_id", "session_id"),)

    token_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    """SHA-256 (hex) of the token's secret part; the token itself is never stored."""
    session_id: str = Field(
        sa_column=Column(String(SESSION_ID_MAX), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)
    )
    issued_at: datetime = _timestamp()
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    """When it was exchanged for the next one; null while it is the session's current token."""

"""Public request and response models, shared by the REST routes and the WebSocket frames."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from server import recurrence
from server.auth.policy import PASSWORD_MAX, PASSWORD_MIN, WeakPasswordError, validate_new_password
from server.db.models import (
    DESCRIPTION_MAX,
    DEVICE_MAX,
    PRIORITIES,
    TAG_MAX,
    TAGS_MAX,
    TIMEZONE_MAX,
    TITLE_MAX,
    Message,
)
from server.fields import DbId, NoNul

MAX_MESSAGE_CHARS = 10_000

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX), NoNul]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX), NoNul]
ChatText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS), NoNul]
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
"""A client's idempotency key for one message: unique per user (the pattern already excludes NUL)."""
TurnId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
"""A turn's id as the server makes them: 32 lower-case hex digits."""
TaskStatus = Literal["all", "pending", "completed"]
Email = Annotated[EmailStr, NoNul]  # email-validator refuses NUL too; the marker keeps the schema honest


def _password_policy(value: str, *, context: tuple[str, ...] = ()) -> str:
    try:
        return validate_new_password(value, context=context)
    except WeakPasswordError as exc:
        raise PydanticCustomError("password_policy", str(exc)) from None


NewPassword = Annotated[
    str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX), NoNul, AfterValidator(_password_policy)
]
"""A password being chosen (signup, password change): the policy in server/auth/policy.py."""
PasswordAttempt = Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX), NoNul]
"""A password being checked (login): no policy, only the bounds no stored password can exceed."""


class ErrorResponse(BaseModel):
    detail: str
    code: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[FieldError]
    code: Literal["invalid"] = "invalid"


# --- auth ---------------------------------------------------------------------------------


Device = Annotated[str, StringConstraints(strip_whitespace=True, max_length=DEVICE_MAX), NoNul]
_DEVICE = Field(default=None, description="How this login is shown in the session list; default: from the User-Agent")


class Credentials(BaseModel):
    email: Email
    password: NewPassword
    device: Device | None = _DEVICE

    @field_validator("password")
    @classmethod
    def _not_the_email(cls, value: str, info: ValidationInfo) -> str:
        email = info.data.get("email")  # absent when the email itself was invalid
        return _password_policy(value, context=(email,)) if isinstance(email, str) else value


class LoginRequest(BaseModel):
    email: Email
    password: PasswordAttempt
    device: Device | None = _DEVICE


class AuthResponse(BaseModel):
    id: str
    """The user's id as a string, like the token's `sub` claim (path parameters take the same digits)."""
    email: str
    token: str
    """The access token: `Authorization: Bearer <token>` on REST, the WebSocket and MCP."""
    refresh_token: str
    """Exchanged at `POST /api/auth/refresh` for new tokens before `token` expires; once only."""
    expires_in: int
    """Seconds `token` is valid for."""
    session_id: str


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096), NoNul]


class PasswordChange(BaseModel):
    current_password: PasswordAttempt
    new_password: NewPassword
    """Also checked against the account's email by the route."""


class PasswordConfirmation(BaseModel):
    password: PasswordAttempt


class SessionPublic(BaseModel):
    id: str
    device: str
    created_at: datetime
    last_used_at: datetime
    current: bool
    """The session of the token that asked."""


class SessionsPublic(BaseModel):
    data: list[SessionPublic]
    """Most recently used first."""
    count: int


@functools.cache
def _zone_names() -> frozenset[str]:
    # The tz database's names; not `localtime` (the server's own zone) nor `Factory` (a placeholder).
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def _known_zone(value: str) -> str:
    if value not in _zone_names():
        raise PydanticCustomError(
            "timezone", "must be an IANA time zone name such as Europe/Berlin or America/New_York (case matters)"
        )
    return value


TimeZoneName = Annotated[
    str, StringConstraints(min_length=1, max_length=TIMEZONE_MAX), NoNul, AfterValidator(_known_zone)
]
"""An IANA time zone name, checked against the tz database (Python's zoneinfo, with the tzdata package)."""


class UserPublic(BaseModel):
    id: int
    email: str
    created_at: datetime
    timezone: str
    """IANA name; "UTC" until set. Repeating tasks keep their local time in it."""


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: TimeZoneName


# --- tasks --------------------------------------------------------------------------------


Priority = Literal["low", "normal", "high"]
INSTANT_MIN = datetime(1970, 1, 1, tzinfo=UTC)
INSTANT_MAX = datetime(9000, 1, 1, tzinfo=UTC)
SNOOZE_MAX_MINUTES = 7 * 24 * 60


def _utc_instant(value: datetime) -> datetime:
    if not INSTANT_MIN <= value < INSTANT_MAX:
        raise PydanticCustomError("instant_range", "must be between 1970 and 9000")
    return value.astimezone(UTC)


Instant = Annotated[AwareDatetime, AfterValidator(_utc_instant)]
"""An ISO 8601 date-time with a UTC offset (`2026-12-03T17:00:00+01:00` or `...Z`), kept in UTC."""


def _tag(value: str) -> str:
    tag = "-".join(value.strip().removeprefix("#").lower().split())
    if not 1 <= len(tag) <= TAG_MAX:
        raise PydanticCustomError("tag", f"a tag is 1 to {TAG_MAX} characters once trimmed")
    if not tag.isprintable():
        raise PydanticCustomError("tag", "a tag may not contain control characters")
    return tag


Tag = Annotated[str, StringConstraints(max_length=4 * TAG_MAX), NoNul, AfterValidator(_tag)]
"""A tag as typed ("Work", " #home ", "Big Project"), normalised: trimmed, a leading # dropped,
lower case, inner whitespace as one `-` ("work", "home", "big-project")."""


def _tag_set(value: list[str]) -> list[str]:
    return sorted(set(value))


Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX), AfterValidator(_tag_set)]
"""At most 10 tags; duplicates (after normalising) count once; kept sorted."""


def _rule(value: str) -> str:
    try:
        return recurrence.normalise(value)
    except recurrence.RuleError as exc:
        raise PydanticCustomError("recurrence", str(exc)) from None


Recurrence = Annotated[str, StringConstraints(max_length=2 * recurrence.RULE_MAX), NoNul, AfterValidator(_rule)]
"""An RRULE (RFC 5545) of the supported subset, e.g. `FREQ=WEEKLY;BYDAY=MO`; stored normalised."""
SnoozeMinutes = Annotated[int, Field(ge=1, le=SNOOZE_MAX_MINUTES)]
SearchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul]
"""Words to find in tasks' titles and descriptions."""

REMINDER_CHANGES = ("remind_at", "snooze_minutes", "dismiss_reminder")


def one_of_reminder_changes(given: set[str]) -> None:
    """A change sets, snoozes or dismisses the reminder: one of them at most."""
    named = [name for name in REMINDER_CHANGES if name in given]
    if len(named) > 1:
        raise ValueError(f"give only one of remind_at, snooze_minutes and dismiss_reminder, not {' and '.join(named)}")


_DUE = "When the task is due: an ISO 8601 date-time with a UTC offset; null clears it"
_REMIND = "When to send a `reminder` event: an instant in the future, with a UTC offset; null removes the reminder"
_RECURRENCE = "An RRULE: FREQ=DAILY|WEEKLY|MONTHLY|YEARLY, INTERVAL=n, BYDAY=MO,... (weekly), BYMONTHDAY=n (monthly)"


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None
    priority: Priority = "normal"
    tags: Tags = Field(default_factory=list, description="Up to 10 tags, normalised (trimmed, lower case)")
    due_at: Instant | None = Field(default=None, description=_DUE)
    remind_at: Instant | None = Field(default=None, description=_REMIND)
    recurrence: Recurrence | None = Field(default=None, description=_RECURRENCE + "; needs a due_at")


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    completed: bool | None = None
    priority: Priority | None = None
    tags: Tags | None = Field(default=None, description="Replaces the task's tags")
    due_at: Instant | None = Field(default=None, description=_DUE)
    remind_at: Instant | None = Field(default=None, description=_REMIND)
    recurrence: Recurrence | None = Field(default=None, description=_RECURRENCE + "; null stops the repeating")
    snooze_minutes: SnoozeMinutes | None = Field(
        default=None, description="Remind again this many minutes from now (the next occurrences keep their offset)"
    )
    dismiss_reminder: Literal[True] | None = Field(
        default=None, description="true: drop the pending reminder (a repeating task's next occurrence reminds again)"
    )

    @model_validator(mode="after")
    def _one_reminder_change(self) -> TaskUpdate:
        one_of_reminder_changes(self.model_fields_set)
        return self


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime
    priority: Priority
    tags: list[str]
    due_at: datetime | None
    remind_at: datetime | None
    """The pending reminder; null once it fired or was dismissed."""
    recurrence: str | None

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_name(cls, value: object) -> object:
        return PRIORITIES[value] if isinstance(value, int) and 0 <= value < len(PRIORITIES) else value


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int
    """All the user's tasks matching the filter, not just this page."""


# --- conversations ------------------------------------------------------------------------


class ConversationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationsPublic(BaseModel):
    data: list[ConversationPublic]
    count: int


class ToolCallPublic(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any]
    result: Any = None


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    role: Literal["user", "assistant", "tool"]
    content: str
    status: str | None = None
    turn_id: str | None = None
    client_msg_id: str | None = None
    """On the user's messages: the key the client sent it with, so it can match its own retries."""
    tool_call: ToolCallPublic | None = None
    created_at: datetime

    @classmethod
    def frame(cls, message: Message) -> dict[str, Any]:
        return cls.model_validate(message).model_dump(mode="json", exclude_none=True)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: DbId | None = Field(default=None, description="Omit to start a new conversation")
    message: ChatText
    client_msg_id: ClientMsgId | None = Field(
        default=None, description="Optional idempotency key: a retry with the same key gets the same turn"
    )

    @field_validator("message")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("message must not be blank")
        return value


class ToolCallSummary(BaseModel):
    name: str
    arguments: dict[str, Any]
    result: Any


class ChatResponse(BaseModel):
    conversation_id: int
    response: str
    tool_calls: list[ToolCallSummary]


def message_frame(fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready form of a message from its column values (no ORM object needed)."""
    return MessagePublic.model_validate(fields).model_dump(mode="json", exclude_none=True)


class MessagesPublic(BaseModel):
    data: list[MessagePublic]
    """Oldest first."""
    has_more: bool
    """More messages exist beyond this page in the direction asked for."""

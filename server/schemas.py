"""Public request and response models, shared by the REST routes and the WebSocket frames."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from server.auth.policy import PASSWORD_MAX, PASSWORD_MIN, WeakPasswordError, validate_new_password
from server.db.models import DESCRIPTION_MAX, DEVICE_MAX, TITLE_MAX, Message, Task
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


class UserPublic(BaseModel):
    id: int
    email: str
    created_at: datetime


# --- tasks --------------------------------------------------------------------------------


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None


class TaskUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None
    completed: bool | None = None


class TaskPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    completed: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def frame(cls, task: Task) -> dict[str, Any]:
        """The JSON-ready form used inside WebSocket events."""
        return cls.model_validate(task).model_dump(mode="json")


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

"""Public request and response models, shared by the REST routes and the WebSocket frames."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from server.db.models import DESCRIPTION_MAX, DEVICE_MAX, TITLE_MAX, Message, Task

MAX_MESSAGE_CHARS = 10_000

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=DESCRIPTION_MAX)]
# 8..128: long enough to be worth hashing, short enough that nobody can make bcrypt chew megabytes.
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]
ChatText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS)]
ClientMsgId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
"""A client's idempotency key for one message: unique per user."""
TaskStatus = Literal["all", "pending", "completed"]


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


AnyPassword = Annotated[str, StringConstraints(min_length=1, max_length=128)]
"""A password to check (not to set): any length the policy ever allowed."""
Device = Annotated[str, StringConstraints(strip_whitespace=True, max_length=DEVICE_MAX)]


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


class Credentials(BaseModel):
    email: EmailStr
    password: Password
    device: Device | None = Field(
        default=None, description="How this login is shown in the session list; default: from the User-Agent"
    )

    _device_text = field_validator("device")(_no_nul)


class LoginRequest(BaseModel):
    email: EmailStr
    password: AnyPassword
    device: Device | None = Field(
        default=None, description="How this login is shown in the session list; default: from the User-Agent"
    )

    _device_text = field_validator("device")(_no_nul)


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
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class PasswordChange(BaseModel):
    current_password: AnyPassword
    new_password: Password


class PasswordConfirmation(BaseModel):
    password: AnyPassword


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

    conversation_id: int | None = Field(default=None, ge=1, description="Omit to start a new conversation")
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

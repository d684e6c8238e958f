"""The WebSocket protocol: every client frame (parsed once, at the edge) and every server frame.

Frames are JSON text frames with a `type`. Client frames are validated into a union
discriminated on `type`; server frames are built by the functions below, so their shapes
live in one place, whichever layer writes them (storage logs its events, the socket edge
answers, the turn streams). A leaf: types and builders, no I/O, nothing of the layers above.
docs/protocol.md is the reference and changes with this module.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired, TypedDict, cast

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from server.errors import AppError, BadJsonError, InvalidInputError, PayloadTooLargeError, UnknownTypeError
from server.fields import DbId, SafeText, Seq
from server.frametext import FrameText, Hole
from server.schemas import MAX_MESSAGE_CHARS, ClientMsgId, SnoozeMinutes, TaskPublic, TurnId

PROTOCOL_VERSION = 1


class _Frame(BaseModel):
    # `v` lets a later protocol grow; unknown fields are ignored so old servers accept newer clients.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    v: int = PROTOCOL_VERSION


class Auth(_Frame):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)
    after_seq: Seq | None = None
    """Optional: replay events after this seq before anything live (a reconnect)."""


class AuthRefresh(_Frame):
    type: Literal["auth.refresh"]
    token: str = Field(min_length=1, max_length=4096)


class Chat(_Frame):
    type: Literal["chat"]
    conversation_id: DbId | None = None
    message: SafeText  # its length is checked before validation, to answer `too_large`
    client_msg_id: ClientMsgId


class Cancel(_Frame):
    type: Literal["cancel"]
    turn_id: TurnId


class Resume(_Frame):
    type: Literal["resume"]
    after_seq: Seq


class Ping(_Frame):
    type: Literal["ping"]
    id: str | int | None = None
    """Echoed in the `pong`, so a client can measure round trips."""


class ReminderSnooze(_Frame):
    type: Literal["reminder.snooze"]
    task_id: DbId
    minutes: SnoozeMinutes
    """Remind again this many minutes from now (1..10080)."""


class ReminderDismiss(_Frame):
    type: Literal["reminder.dismiss"]
    task_id: DbId


ClientFrameType = Auth | AuthRefresh | Chat | Cancel | Resume | Ping | ReminderSnooze | ReminderDismiss
ClientFrame = Annotated[ClientFrameType, Field(discriminator="type")]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_TYPES = ("auth", "auth.refresh", "chat", "cancel", "resume", "ping", "reminder.snooze", "reminder.dismiss")


def parse_client_frame(text: str, *, max_bytes: int) -> ClientFrame:
    """Parse one text frame, or raise the `AppError` naming what was wrong (with the chat's `ref`)."""
    # Four bytes per character at most, so len() bounds the size without encoding.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise PayloadTooLargeError(f"Frame is larger than {max_bytes} bytes")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadJsonError("Frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadJsonError(f"Expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        # At most 40 characters of what was sent: the detail names the problem, it does not echo the frame.
        raise UnknownTypeError(f"Unknown frame type {kind!r:.40}; expected one of {', '.join(CLIENT_TYPES)}")
    ref = data.get("client_msg_id") if kind == "chat" else None
    ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
    if kind == "chat" and isinstance(data.get("message"), str) and len(data["message"]) > MAX_MESSAGE_CHARS:
        raise PayloadTooLargeError(f"Message is longer than {MAX_MESSAGE_CHARS} characters", extra={"ref": ref})
    try:
        frame = _client_frame.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or kind
        raise InvalidInputError(f"{kind}: {where}: {first['msg']}", extra={"ref": ref}) from None
    if isinstance(frame, Chat) and not frame.message.strip():
        raise InvalidInputError("chat: message must not be empty", extra={"ref": ref})
    return frame


# --- server frames --------------------------------------------------------------------------
#
# One TypedDict per frame the server sends, and a builder for each. A persisted event (it is in
# the user's event log) carries `seq`; `ServerFrame` is the union of them all. The frames the
# hot path writes in one statement with the database's numbers (`message`, `turn.start`,
# `turn.end`) are also built as `FrameText`, with holes for those numbers.


class Hello(TypedDict):
    type: Literal["hello"]
    protocol: int
    user_id: int
    connection_id: str
    last_seq: int
    expires_at: int


class Ack(TypedDict):
    type: Literal["ack"]
    client_msg_id: str
    conversation_id: int
    message_id: int
    turn_id: str
    seq: int


class Error(TypedDict):
    type: Literal["error"]
    code: str
    detail: str
    ref: str | None


class ErrorRetry(Error):
    retry_after: int
    """Seconds to wait before trying again (`rate_limited`, `overloaded`)."""


class Pong(TypedDict):
    type: Literal["pong"]
    id: str | int | None


class ResyncRequired(TypedDict):
    type: Literal["resync_required"]
    last_seq: int
    reason: str


class AuthRefreshed(TypedDict):
    type: Literal["auth.refreshed"]
    expires_at: int


class ToolCallBody(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]
    result: Any


class MessageBody(TypedDict):
    """A message as REST returns it (`MessagePublic`); optional keys are left out when empty."""

    id: int
    conversation_id: int
    role: Literal["user", "assistant", "tool"]
    content: str
    status: NotRequired[str]
    turn_id: NotRequired[str]
    client_msg_id: NotRequired[str]
    tool_call: NotRequired[ToolCallBody]
    created_at: str


class MessageEvent(TypedDict):
    type: Literal["message"]
    seq: int
    conversation_id: int
    message: MessageBody


class TurnStart(TypedDict):
    type: Literal["turn.start"]
    seq: int
    turn_id: str
    conversation_id: int


class Delta(TypedDict):
    """Ephemeral (no seq): `offset` counts code points of the reply before `text`, so a repeat is harmless."""

    type: Literal["delta"]
    turn_id: str
    conversation_id: int
    offset: int
    text: str


class ToolCall(TypedDict):
    type: Literal["tool.call"]
    seq: int
    turn_id: str
    conversation_id: int
    call_id: str
    name: str
    arguments: dict[str, Any]


class ToolResult(TypedDict):
    type: Literal["tool.result"]
    seq: int
    turn_id: str
    conversation_id: int
    call_id: str
    result: Any


TurnStatus = Literal["done", "cancelled", "failed", "interrupted"]


class TurnEnd(TypedDict):
    type: Literal["turn.end"]
    seq: int
    turn_id: str
    conversation_id: int
    status: TurnStatus
    message_id: int | None
    """The persisted reply; None only when there is none (the conversation was deleted)."""
    reason: NotRequired[str]


class TaskBody(TypedDict):
    """A task as frames carry it: as REST returns it (`TaskPublic` in its JSON form, times ISO 8601 UTC)."""

    id: int
    title: str
    description: str | None
    completed: bool
    created_at: str
    updated_at: str
    priority: Literal["low", "normal", "high"]
    tags: list[str]
    due_at: str | None
    remind_at: str | None
    """The pending reminder; null once it fired or was dismissed."""
    recurrence: str | None


TaskEventType = Literal["task.created", "task.updated", "task.deleted"]


class TaskEvent(TypedDict):
    """`task.created`, `task.updated`, `task.deleted`: the task as REST returns it."""

    type: TaskEventType
    seq: int
    task: TaskBody


class Reminder(TypedDict):
    """A reminder that fell due: sent once (one event in the log), to every socket of the user."""

    type: Literal["reminder"]
    seq: int
    task: TaskBody
    """The task as it is once the reminder fired (its `remind_at` is null again)."""
    remind_at: str
    """When the reminder was due (ISO 8601, UTC)."""


class ReminderDismissed(TypedDict):
    """A reminder dismissed on some device (`reminder.dismiss`, or REST and the tools): close it everywhere."""

    type: Literal["reminder.dismissed"]
    seq: int
    task: TaskBody


class ConversationDeleted(TypedDict):
    type: Literal["conversation.deleted"]
    seq: int
    conversation_id: int


Event = (
    MessageEvent
    | TurnStart
    | ToolCall
    | ToolResult
    | TurnEnd
    | TaskEvent
    | Reminder
    | ReminderDismissed
    | ConversationDeleted
)
"""The persisted frames: each has a `seq` and a row in the user's event log."""

ServerFrame = (
    Hello
    | Ack
    | Error
    | ErrorRetry
    | Pong
    | ResyncRequired
    | AuthRefreshed
    | MessageEvent
    | TurnStart
    | Delta
    | ToolCall
    | ToolResult
    | TurnEnd
    | TaskEvent
    | Reminder
    | ReminderDismissed
    | ConversationDeleted
)
SERVER_TYPES = (
    "hello",
    "ack",
    "error",
    "pong",
    "resync_required",
    "auth.refreshed",
    "message",
    "turn.start",
    "delta",
    "tool.call",
    "tool.result",
    "turn.end",
    "task.created",
    "task.updated",
    "task.deleted",
    "reminder",
    "reminder.dismissed",
    "conversation.deleted",
)
"""Every `type` the server sends (docs/protocol.md documents each; a test checks)."""


def hello(*, user_id: int, connection_id: str, last_seq: int, expires_at: int) -> Hello:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "user_id": user_id,
        "connection_id": connection_id,
        "last_seq": last_seq,
        "expires_at": expires_at,
    }


def ack(*, client_msg_id: str, conversation_id: int, message_id: int, turn_id: str, seq: int) -> Ack:
    return {
        "type": "ack",
        "client_msg_id": client_msg_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "turn_id": turn_id,
        "seq": seq,
    }


def error(code: str, detail: str, *, ref: str | None = None, retry_after: int | None = None) -> Error:
    """`ref` names what the error is about: the `client_msg_id` of a refused chat, when known.

    `retry_after` (whole seconds, as HTTP's Retry-After) comes with `rate_limited` and `overloaded`.
    """
    if retry_after is not None:
        return ErrorRetry(type="error", code=code, detail=detail, ref=ref, retry_after=retry_after)
    return {"type": "error", "code": code, "detail": detail, "ref": ref}


def error_from(exc: AppError) -> Error:
    """The `error` frame for any error of the tree, as the HTTP handler renders it for REST."""
    ref = exc.extra.get("ref")
    retry_after = exc.extra.get("retry_after")
    return error(
        exc.code,
        exc.detail,
        ref=ref if isinstance(ref, str) else None,
        retry_after=retry_after if isinstance(retry_after, int) else None,
    )


def pong(ping_id: str | int | None) -> Pong:
    return {"type": "pong", "id": ping_id}


def resync_required(last_seq: int, reason: str) -> ResyncRequired:
    return {"type": "resync_required", "last_seq": last_seq, "reason": reason}


def auth_refreshed(expires_at: int) -> AuthRefreshed:
    return {"type": "auth.refreshed", "expires_at": expires_at}


def delta(turn_id: str, conversation_id: int, offset: int, text: str) -> Delta:
    return {"type": "delta", "turn_id": turn_id, "conversation_id": conversation_id, "offset": offset, "text": text}


def task_body(task: object) -> TaskBody:
    """`task` (a `Task` row, or anything `TaskPublic` reads) as frames carry it."""
    return cast(TaskBody, TaskPublic.model_validate(task).model_dump(mode="json"))


def task_event(kind: TaskEventType, seq: int, task: TaskBody) -> TaskEvent:
    return {"type": kind, "seq": seq, "task": task}


def reminder(seq: int, task: TaskBody, remind_at: datetime) -> Reminder:
    """`task` as it is once the reminder fired; `remind_at`: when it was due."""
    return {"type": "reminder", "seq": seq, "task": task, "remind_at": iso_utc(remind_at)}


def reminder_dismissed(seq: int, task: TaskBody) -> ReminderDismissed:
    return {"type": "reminder.dismissed", "seq": seq, "task": task}


def conversation_deleted(seq: int, conversation_id: int) -> ConversationDeleted:
    return {"type": "conversation.deleted", "seq": seq, "conversation_id": conversation_id}


# --- frames written with the database's numbers (see server/frametext.py) -----------------


def iso_utc(moment: datetime) -> str:
    """A timestamp as the REST models render it (pydantic: ISO 8601, `Z` for UTC)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def message_event_text(
    *,
    role: Literal["user", "assistant"],
    content: str,
    created_at: datetime,
    turn_id: str,
    client_msg_id: str | None = None,
    status: str | None = None,
) -> FrameText:
    """A `message` event whose seq, conversation id and message id the writing statement fills in."""
    rest: dict[str, Any] = {"role": role, "content": content}
    if status is not None:
        rest["status"] = status
    rest["turn_id"] = turn_id
    if client_msg_id is not None:
        rest["client_msg_id"] = client_msg_id
    rest["created_at"] = iso_utc(created_at)
    tail = orjson.dumps(rest).decode()  # '{"role":...}': user text only from here on
    return FrameText(
        parts=(
            '{"type":"message","seq":',
            ',"conversation_id":',
            ',"message":{"id":',
            ',"conversation_id":',
            f",{tail[1:]}}}",
        ),
        holes=(Hole.SEQ, Hole.CONVERSATION_ID, Hole.MESSAGE_ID, Hole.CONVERSATION_ID),
    )


def turn_start_text(turn_id: str) -> FrameText:
    """`turn.start`, its seq and conversation id filled in by the writing statement."""
    return FrameText(
        parts=('{"type":"turn.start","seq":', f',"turn_id":{orjson.dumps(turn_id).decode()},"conversation_id":', "}"),
        holes=(Hole.SEQ, Hole.CONVERSATION_ID),
    )


def turn_end_text(turn_id: str, conversation_id: int, status: TurnStatus, *, reason: str | None = None) -> FrameText:
    """`turn.end`, its seq and the reply's message id filled in by the writing statement."""
    head = {"turn_id": turn_id, "conversation_id": conversation_id, "status": status}
    tail = f',"reason":{orjson.dumps(reason).decode()}}}' if reason else "}"
    return FrameText(
        parts=('{"type":"turn.end","seq":', f',{orjson.dumps(head).decode()[1:-1]},"message_id":', tail),
        holes=(Hole.SEQ, Hole.MESSAGE_ID),
    )


def tool_call_text(turn_id: str, conversation_id: int, call_id: str, name: str, arguments: dict[str, Any]) -> FrameText:
    """`tool.call` (`ToolCall`), its seq filled in by the writing statement."""
    rest = {"turn_id": turn_id, "conversation_id": conversation_id, "call_id": call_id, "name": name}
    return FrameText(
        parts=(
            '{"type":"tool.call","seq":',
            f',{orjson.dumps(rest).decode()[1:-1]},"arguments":{orjson.dumps(arguments).decode()}}}',
        ),
        holes=(Hole.SEQ,),
    )


def tool_result_text(turn_id: str, conversation_id: int, call_id: str, result_json: str) -> FrameText:
    """`tool.result` (`ToolResult`), its seq filled in by the writing statement; `result_json` is the
    result's JSON text, made once for the frame and the `tool` message alike."""
    rest = {"turn_id": turn_id, "conversation_id": conversation_id, "call_id": call_id}
    return FrameText(
        parts=('{"type":"tool.result","seq":', f',{orjson.dumps(rest).decode()[1:-1]},"result":{result_json}}}'),
        holes=(Hole.SEQ,),
    )


def turn_end(
    turn_id: str,
    conversation_id: int,
    status: TurnStatus,
    message_id: int | None,
    *,
    seq: int,
    reason: str | None = None,
) -> TurnEnd:
    """`turn.end` as a dict, for the rare turns that end with no reply to write (deleted conversation)."""
    frame: TurnEnd = {
        "type": "turn.end",
        "seq": seq,
        "turn_id": turn_id,
        "conversation_id": conversation_id,
        "status": status,
        "message_id": message_id,
    }
    if reason:
        frame["reason"] = reason
    return frame

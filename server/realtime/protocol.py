"""The WebSocket protocol: every client frame (parsed once, at the edge) and every server frame.

Frames are JSON text frames with a `type`. Client frames are validated into a union
discriminated on `type`; server frames are built by the functions below, so their shapes
live in one place. docs/protocol.md is the reference and changes with this module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from server.errors import AppError, ErrorCode, InvalidInputError, PayloadTooLargeError
from server.fields import DbId, SafeText, Seq
from server.schemas import MAX_MESSAGE_CHARS, ClientMsgId, TurnId

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


ClientFrameType = Auth | AuthRefresh | Chat | Cancel | Resume | Ping
ClientFrame = Annotated[ClientFrameType, Field(discriminator="type")]
_client_frame: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_TYPES = ("auth", "auth.refresh", "chat", "cancel", "resume", "ping")


class ProtocolError(AppError):
    """A frame that could not be understood; answered with an `error` frame, the socket stays open."""

    status_code = 400
    code = ErrorCode.INVALID
    default_detail = "Invalid frame"

    def __init__(self, code: ErrorCode, detail: str, *, ref: str | None = None) -> None:
        super().__init__(detail)
        self.error_code = code
        self.ref = ref


def parse_client_frame(text: str, *, max_bytes: int) -> ClientFrame:
    """Parse one text frame, or raise `ProtocolError`/`AppError` naming what was wrong."""
    # Four bytes per character at most, so len() bounds the size without encoding.
    if len(text) > max_bytes or (len(text) * 4 > max_bytes and len(text.encode()) > max_bytes):
        raise PayloadTooLargeError(f"Frame is larger than {max_bytes} bytes")
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError(ErrorCode.BAD_JSON, "Frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.BAD_JSON, f"Expected a JSON object, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in CLIENT_TYPES:
        # At most 40 characters of what was sent: the detail names the problem, it does not echo the frame.
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {kind!r:.40}; expected one of {', '.join(CLIENT_TYPES)}"
        )
    ref = data.get("client_msg_id") if kind == "chat" else None
    ref = ref if isinstance(ref, str) and len(ref) <= 64 else None
    if kind == "chat" and isinstance(data.get("message"), str) and len(data["message"]) > MAX_MESSAGE_CHARS:
        raise PayloadTooLargeError(f"Message is longer than {MAX_MESSAGE_CHARS} characters", extra={"ref": ref})
    try:
        frame = _client_frame.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or kind
        raise ProtocolError(ErrorCode.INVALID, f"{kind}: {where}: {first['msg']}", ref=ref) from None
    if isinstance(frame, Chat) and not frame.message.strip():
        raise InvalidInputError("chat: message must not be empty", extra={"ref": ref})
    return frame


# --- server frames --------------------------------------------------------------------------


def hello(*, user_id: int, connection_id: str, last_seq: int, expires_at: int) -> dict[str, Any]:
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "user_id": user_id,
        "connection_id": connection_id,
        "last_seq": last_seq,
        "expires_at": expires_at,
    }


def ack(*, client_msg_id: str, conversation_id: int, message_id: int, turn_id: str, seq: int) -> dict[str, Any]:
    return {
        "type": "ack",
        "client_msg_id": client_msg_id,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "turn_id": turn_id,
        "seq": seq,
    }


def error(code: str, detail: str, *, ref: str | None = None, retry_after: int | None = None) -> dict[str, Any]:
    """`ref` names what the error is about: the `client_msg_id` of a refused chat, when known.

    `retry_after` (seconds) comes with `rate_limited` refusals of an abuse limit.
    """
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail, "ref": ref}
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


def error_from(exc: AppError) -> dict[str, Any]:
    if isinstance(exc, ProtocolError):
        return error(exc.error_code, exc.detail, ref=exc.ref)
    ref = exc.extra.get("ref")
    retry_after = exc.extra.get("retry_after")
    return error(
        exc.code,
        exc.detail,
        ref=ref if isinstance(ref, str) else None,
        retry_after=retry_after if isinstance(retry_after, int) else None,
    )


def pong(ping_id: str | int | None) -> dict[str, Any]:
    return {"type": "pong", "id": ping_id}


def resync_required(last_seq: int, reason: str) -> dict[str, Any]:
    return {"type": "resync_required", "last_seq": last_seq, "reason": reason}


def auth_refreshed(expires_at: int) -> dict[str, Any]:
    return {"type": "auth.refreshed", "expires_at": expires_at}


def message(conversation_id: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "conversation_id": conversation_id, "message": message}


def turn_start(turn_id: str, conversation_id: int) -> dict[str, Any]:
    return {"type": "turn.start", "turn_id": turn_id, "conversation_id": conversation_id}


def delta(turn_id: str, conversation_id: int, offset: int, text: str) -> dict[str, Any]:
    """`offset` counts Unicode code points of the reply before `text`: a repeated delta is harmless."""
    return {"type": "delta", "turn_id": turn_id, "conversation_id": conversation_id, "offset": offset, "text": text}


def tool_call(turn_id: str, conversation_id: int, call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool.call",
        "turn_id": turn_id,
        "conversation_id": conversation_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def tool_result(turn_id: str, conversation_id: int, call_id: str, result: Any) -> dict[str, Any]:
    return {
        "type": "tool.result",
        "turn_id": turn_id,
        "conversation_id": conversation_id,
        "call_id": call_id,
        "result": result,
    }


def turn_end(
    turn_id: str, conversation_id: int, status: str, message_id: int | None, *, reason: str | None = None
) -> dict[str, Any]:
    """`message_id` is the persisted reply; None only when there is none (the conversation was deleted)."""
    frame = {
        "type": "turn.end",
        "turn_id": turn_id,
        "conversation_id": conversation_id,
        "status": status,
        "message_id": message_id,
    }
    if reason:
        frame["reason"] = reason
    return frame

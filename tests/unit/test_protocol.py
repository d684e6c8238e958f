"""Client frames are parsed once, at the edge, into typed frames or a precise error."""

from __future__ import annotations

import pytest

from server.errors import AppError, ErrorCode, RateLimitedError
from server.realtime import protocol
from server.realtime.envelope import Envelope, decode_batch, encode_batch

MAX = 128 * 1024


def test_parses_every_client_frame() -> None:
    chat = protocol.parse_client_frame(
        '{"type": "chat", "conversation_id": 3, "message": "hi", "client_msg_id": "a-1", "extra": 1}', max_bytes=MAX
    )
    assert isinstance(chat, protocol.Chat) and chat.conversation_id == 3 and chat.v == 1
    assert isinstance(
        protocol.parse_client_frame('{"type": "cancel", "turn_id": "' + "a" * 32 + '"}', max_bytes=MAX), protocol.Cancel
    )
    resume = protocol.parse_client_frame('{"type": "resume", "after_seq": 0}', max_bytes=MAX)
    assert isinstance(resume, protocol.Resume) and resume.after_seq == 0
    assert isinstance(protocol.parse_client_frame('{"type": "ping"}', max_bytes=MAX), protocol.Ping)
    auth = protocol.parse_client_frame('{"type": "auth", "token": "t", "after_seq": 5}', max_bytes=MAX)
    assert isinstance(auth, protocol.Auth) and auth.after_seq == 5
    refresh = protocol.parse_client_frame('{"type": "auth.refresh", "token": "t"}', max_bytes=MAX)
    assert isinstance(refresh, protocol.AuthRefresh)


@pytest.mark.parametrize(
    ("text", "code", "detail_part"),
    [
        ("nope", ErrorCode.BAD_JSON, "not valid JSON"),
        ('"a string"', ErrorCode.BAD_JSON, "got str"),
        ('{"type": 5}', ErrorCode.UNKNOWN_TYPE, "expected one of"),
        ('{"type": "chat", "client_msg_id": "a"}', ErrorCode.INVALID, "chat: message"),
        (
            '{"type": "chat", "message": "hi", "client_msg_id": "x" }'.replace('"x"', '"' + "x" * 65 + '"'),
            ErrorCode.INVALID,
            "client_msg_id",
        ),
        ('{"type": "chat", "message": "' + "m" * 10_001 + '", "client_msg_id": "a"}', ErrorCode.TOO_LARGE, "10000"),
        ('{"type": "ping", "pad": "' + "p" * MAX + '"}', ErrorCode.TOO_LARGE, "larger than"),
        ('{"type": "resume", "after_seq": "3"}', ErrorCode.INVALID, "after_seq"),
    ],
    ids=["not-json", "not-object", "bad-type", "missing", "long-id", "long-message", "big-frame", "wrong-type"],
)
def test_errors_name_what_was_wrong(text: str, code: ErrorCode, detail_part: str) -> None:
    with pytest.raises(AppError) as raised:
        protocol.parse_client_frame(text, max_bytes=MAX)
    frame = protocol.error_from(raised.value)
    assert frame["code"] == code and detail_part in frame["detail"]


def test_error_ref_names_the_refused_chat() -> None:
    with pytest.raises(AppError) as raised:
        protocol.parse_client_frame('{"type": "chat", "message": "", "client_msg_id": "c-9"}', max_bytes=MAX)
    assert protocol.error_from(raised.value)["ref"] == "c-9"


def test_multibyte_frames_are_measured_in_bytes() -> None:
    text = '{"type": "ping", "pad": "' + "é" * 40_000 + '"}'  # 80 kB of UTF-8 in 40 k characters
    assert isinstance(protocol.parse_client_frame(text, max_bytes=MAX), protocol.Ping)
    with pytest.raises(AppError):
        protocol.parse_client_frame(text, max_bytes=64 * 1024)


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope.event({"type": "task.created", "seq": 12, "task": {"title": "a\nb"}}),
        Envelope.event({"type": "delta", "turn_id": "t", "offset": 0, "text": "x"}),
        Envelope.command({"type": "cancel", "turn_id": "t"}),
    ],
    ids=["persisted", "ephemeral", "control"],
)
def test_envelopes_round_trip_in_a_batch(envelope: Envelope) -> None:
    other = Envelope.event({"type": "task.deleted", "seq": 13, "task": {"title": "two\nlines"}})
    assert decode_batch(encode_batch("worker-1", [envelope, other])) == ("worker-1", [envelope, other])


def test_a_batch_carries_when_it_was_published_and_older_workers_read_it_as_before() -> None:
    event = Envelope.event({"type": "task.created", "seq": 12, "task": {"title": "t"}})
    data = encode_batch("worker-1", [event, Envelope.command({"type": "catch_up"})], published=1700000000.25)
    origin, [received, control] = decode_batch(data)
    assert origin == "worker-1" and received.published == 1700000000.25 and received.seq == 12
    assert control.published is None  # control messages are not fan-out
    assert decode_batch(encode_batch("worker-1", [event]))[1][0].published is None  # an older worker's batch
    for stamp in ("nan", "inf", "soon"):  # an unreadable stamp costs a measurement, never the events
        origin, [parsed] = decode_batch(f"worker-1 {stamp}\nE12 {event.text}".encode())
        assert origin == "worker-1" and parsed.published is None and parsed.seq == 12


def test_envelope_batches_reject_garbage() -> None:
    for garbage in (b"no header", b"worker\nX {}", b"worker", b"\nE1 {}"):
        with pytest.raises(ValueError):
            decode_batch(garbage)


def test_a_rate_limited_error_says_when_to_retry() -> None:
    frame = protocol.error_from(
        RateLimitedError("Too many messages, retry in 12 s", extra={"retry_after": 12, "ref": "c-1"})
    )
    assert frame == {
        "type": "error",
        "code": "rate_limited",
        "detail": "Too many messages, retry in 12 s",
        "ref": "c-1",
        "retry_after": 12,
    }
    assert "retry_after" not in protocol.error_from(AppError("x"))

"""Client frames are parsed once, at the edge, into typed frames or a precise error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server import protocol
from server.errors import AppError, ErrorCode, RateLimitedError
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
    snooze = protocol.parse_client_frame('{"type": "reminder.snooze", "task_id": 7, "minutes": 10}', max_bytes=MAX)
    assert isinstance(snooze, protocol.ReminderSnooze) and (snooze.task_id, snooze.minutes) == (7, 10)
    dismiss = protocol.parse_client_frame('{"type": "reminder.dismiss", "task_id": 7}', max_bytes=MAX)
    assert isinstance(dismiss, protocol.ReminderDismiss) and dismiss.task_id == 7


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
        ('{"type": "reminder.snooze", "task_id": 7, "minutes": 0}', ErrorCode.INVALID, "reminder.snooze: minutes"),
        ('{"type": "reminder.dismiss"}', ErrorCode.INVALID, "reminder.dismiss: task_id"),
    ],
    ids=[
        "not-json",
        "not-object",
        "bad-type",
        "missing",
        "long-id",
        "long-message",
        "big-frame",
        "wrong-type",
        "snooze-zero",
        "dismiss-nothing",
    ],
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


def _documented_server_frames(reference: str) -> list[str]:
    """The types named by the first cells of the table rows under "Server → client" (`a` / `b` rows too)."""
    section = reference.split("\n## Server → client\n", 1)[1].split("\n## ", 1)[0]
    kinds: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `"):
            first = line.split(" | ", 1)[0].removeprefix("| ")
            names = first.split(" / ")
            assert all(re.fullmatch(r"`[a-z_.]+`", name) for name in names), f"not a type cell: {first!r}"
            kinds.extend(name.strip("`") for name in names)
    return kinds


def test_the_protocol_reference_names_every_frame() -> None:
    """docs/protocol.md has a row for each frame type the server sends (and none it does not), and names
    each type the client may send."""
    reference = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    documented = _documented_server_frames(reference)
    assert sorted(documented) == sorted(protocol.SERVER_TYPES)
    assert [kind for kind in protocol.CLIENT_TYPES if f"`{kind}`" not in reference] == []


def test_a_frame_named_only_in_prose_is_not_documented() -> None:
    reference = "\n## Server → client\n\n| type | fields |\n|---|---|\n| `ack` / `pong` | x |\nthe `hello` frame\n"
    assert _documented_server_frames(reference) == ["ack", "pong"]


def test_server_types_match_the_frame_union() -> None:
    """SERVER_TYPES lists every `type` of the ServerFrame union, and nothing else."""
    import typing

    kinds: set[str] = set()
    for frame in typing.get_args(protocol.ServerFrame):
        kinds.update(typing.get_args(typing.get_type_hints(frame)["type"]))
    assert kinds == set(protocol.SERVER_TYPES)


def test_a_worker_delivers_its_own_batch_once() -> None:
    """Its own batches come back from the broker (it subscribes the same channel): they are skipped."""
    from server.realtime.broker.memory import MemoryBroker
    from server.realtime.hub import Hub

    received: list[Envelope] = []

    class Socket:
        def deliver(self, envelope: Envelope) -> None:
            received.append(envelope)

        def catch_up(self) -> None: ...

        def control(self, message: dict[str, object]) -> None: ...

    hub = Hub(MemoryBroker(), prefix="p")
    hub._subscribers[7] = {Socket()}
    delta = Envelope.event({"type": "delta", "turn_id": "t", "conversation_id": 1, "offset": 0, "text": "hi"})
    hub.publish(7, [delta])  # delivered here at once
    for published in (None, 1234.5):  # as the publisher sends it, with or without its stamp
        hub.on_message(hub.channel(7), encode_batch(hub.origin, [delta], published=published))
    hub.on_message(hub.channel(7), encode_batch("another-worker", [delta]))  # another worker's: delivered
    assert [e.text for e in received] == [delta.text, delta.text]


def test_the_task_in_frames_is_the_task_as_rest_returns_it() -> None:
    """`TaskBody` names exactly `TaskPublic`'s fields, and `task_body` gives them in their JSON form."""
    import typing
    from datetime import UTC, datetime

    from server.db.models import Task
    from server.schemas import TaskPublic

    assert set(typing.get_type_hints(protocol.TaskBody)) == set(TaskPublic.model_fields)
    moment = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    task = Task(id=7, user_id=1, title="Buy milk", created_at=moment, updated_at=moment, priority=2, due_at=moment)
    body = protocol.task_body(task)
    assert body == {
        "id": 7,
        "title": "Buy milk",
        "description": None,
        "completed": False,
        "created_at": "2026-12-03T17:00:00Z",
        "updated_at": "2026-12-03T17:00:00Z",
        "priority": "high",
        "tags": [],
        "due_at": "2026-12-03T17:00:00Z",
        "remind_at": None,
        "recurrence": None,
    }
    assert protocol.task_event("task.updated", 5, body) == {"type": "task.updated", "seq": 5, "task": body}
    assert protocol.reminder(6, body, moment)["remind_at"] == "2026-12-03T17:00:00Z"

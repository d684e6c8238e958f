"""Hypothesis over WebSocket frames, on both stacks: random and mutated client frames never break a socket,
and every `chat` the server acked is in the history afterwards, with its reply.

After each frame the client sends a `ping`: the socket must answer it (after an `error` frame, or
whatever the frame legitimately caused), so a frame that crashed or wedged the connection fails
the example. Examples are bounded and derandomized.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings, strategies as st
from websockets.sync.client import ClientConnection, connect

from server.protocol import CLIENT_TYPES
from tests.support.live import LiveServer
from tests.support.timing import TIMEOUT
from tests.support.users import AppUser

EXAMPLES = 150

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
CLIENT_MSG_IDS = st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,64}\Z")
VALID_FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "chat": {
        "conversation_id": st.none() | st.integers(min_value=1, max_value=5),
        "message": st.text(min_size=1, max_size=60),
        "client_msg_id": CLIENT_MSG_IDS,
    },
    "cancel": {"turn_id": st.from_regex(r"\A[0-9a-f]{32}\Z")},
    "resume": {"after_seq": st.integers(min_value=0, max_value=50)},
    "ping": {"id": st.none() | st.integers(min_value=0, max_value=1000) | st.text(max_size=20)},
    "auth.refresh": {"token": st.text(min_size=1, max_size=60)},
    "auth": {"token": st.text(min_size=1, max_size=60), "after_seq": st.none() | st.integers(min_value=0)},
    "reminder.snooze": {"task_id": st.integers(min_value=1, max_value=5), "minutes": st.integers(-5, 20_000)},
    "reminder.dismiss": {"task_id": st.integers(min_value=1, max_value=5)},
}


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A frame of a known type whose fields are each valid, missing, or any JSON value; plus extra fields."""
    kind = draw(st.sampled_from(CLIENT_TYPES))
    frame: dict[str, Any] = {"type": kind}
    for name, valid in VALID_FIELDS[kind].items():
        choice = draw(st.sampled_from(["valid", "valid", "missing", "any"]))
        if choice != "missing":
            frame[name] = draw(valid if choice == "valid" else JSON_VALUES)
    frame.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return frame


FRAMES: st.SearchStrategy[str | bytes] = st.one_of(
    mutated_frames().map(lambda frame: json.dumps(frame, ensure_ascii=False)),  # json: orjson stops at 64 bits
    st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4).map(json.dumps),
    JSON_VALUES.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100),
)


@contextmanager
def socket(server: LiveServer, user: AppUser) -> Iterator[ClientConnection]:
    with connect(server.ws_url, additional_headers=user.headers, open_timeout=TIMEOUT, max_size=None) as ws:
        assert orjson.loads(ws.recv(timeout=TIMEOUT))["type"] == "hello"
        yield ws


def test_random_frames_never_break_the_socket_nor_lose_an_acked_message(
    threaded_server: LiveServer, api_user: AppUser
) -> None:
    acks: dict[str, dict[str, Any]] = {}
    sent: dict[str, Any] = {}  # client_msg_id -> the text of the chat that was acked

    with socket(threaded_server, api_user) as ws:

        @given(frame=FRAMES)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def check(frame: str | bytes) -> None:
            message = _json_object(frame).get("message")
            ws.send(frame)
            probe = secrets.token_hex(6)
            ws.send(orjson.dumps({"type": "ping", "id": probe}).decode())
            while True:  # the socket answers the probe: it is alive and still reading in order
                reply = orjson.loads(ws.recv(timeout=TIMEOUT))
                assert reply["type"] != "hello"
                if reply["type"] == "ack" and reply["client_msg_id"] not in acks:
                    # Acks come before the probe's pong, so this one answers this example's frame. (A
                    # retry of an accepted id gets the first ack back, and keeps the first text.)
                    acks[reply["client_msg_id"]] = reply
                    sent[reply["client_msg_id"]] = message
                if reply["type"] == "pong" and reply["id"] == probe:
                    return

        check()

    assert acks, "no example produced an accepted chat: the strategy no longer exercises the happy path"
    with httpx.Client(base_url=threaded_server.base_url, headers=api_user.headers, timeout=TIMEOUT) as http:
        for client_msg_id, ack in acks.items():
            history = _history_with_reply(http, api_user, ack)
            mine = [m for m in history if m["id"] == ack["message_id"]]
            assert len(mine) == 1, (client_msg_id, ack)
            assert mine[0]["role"] == "user" and mine[0]["client_msg_id"] == client_msg_id
            assert mine[0]["content"] == sent[client_msg_id]


def _json_object(frame: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(frame) if isinstance(frame, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _history_with_reply(http: httpx.Client, user: AppUser, ack: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation's messages once the acked turn has saved its reply (turns run on after the socket)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        response = http.get(user.url(f"/conversations/{ack['conversation_id']}/messages?limit=200"))
        assert response.status_code == 200, response.text
        data: list[dict[str, Any]] = response.json()["data"]
        if any(m["role"] == "assistant" and m.get("turn_id") == ack["turn_id"] for m in data):
            return data
        assert time.monotonic() < deadline, f"turn {ack['turn_id']} never saved a reply"
        time.sleep(0.05)  # polling the REST view of another process's work: no event reaches this client

"""The ordered-delivery state machine on its own: live order, duplicates, gaps, resume, resync."""

from __future__ import annotations

import orjson
import pytest

from server.ws.sequencer import GAP_WAIT, Sequencer
from tests.unit.test_connection import FakeLog


def frame(seq: int) -> str:
    return orjson.dumps({"type": "task.created", "seq": seq}).decode()


def seqs(texts: list[str]) -> list[int | None]:
    return [orjson.loads(text).get("seq") for text in texts]


def sequencer(log: FakeLog, *, start: int = 0, max_replay: int = 100) -> Sequencer:
    return Sequencer(log, user_id=1, start=start, max_replay=max_replay)


def test_live_events_go_out_in_order_and_duplicates_are_dropped() -> None:
    s = sequencer(FakeLog())
    assert seqs(s.offer(1, frame(1), 0.0)) == [1]
    assert s.offer(3, frame(3), 0.0) == []  # 2 is missing: 3 waits
    assert s.holding
    assert s.offer(1, frame(1), 0.0) == []  # a duplicate
    assert seqs(s.offer(2, frame(2), 0.0)) == [2, 3]  # 2 arrives: both go, in order
    assert (s.holding, s.cursor) == (False, 3)


def test_a_held_event_waits_the_gap_window_then_the_log_fills_it() -> None:
    s = sequencer(FakeLog())
    s.offer(2, frame(2), 10.0)
    assert s.gap_deadline == pytest.approx(10.0 + GAP_WAIT)


async def test_fill_gap_reads_what_is_missing_then_releases_what_was_held() -> None:
    log = FakeLog({1: frame(1), 2: frame(2), 3: frame(3)})
    s = sequencer(log)
    s.offer(3, frame(3), 0.0)
    assert seqs(await s.fill_gap(1.0)) == [1, 2, 3]
    assert s.cursor == 3 and not s.holding


async def test_fill_gap_with_pruned_events_asks_the_client_to_resync() -> None:
    log = FakeLog({5: frame(5), 6: frame(6)})  # 1..4 pruned
    s = sequencer(log)
    [resync] = await s.fill_gap(1.0)
    assert orjson.loads(resync) == {"type": "resync_required", "last_seq": 6, "reason": "too far behind to replay"}
    assert s.cursor == s.floor == 6


async def test_resume_sends_only_what_this_socket_never_sent() -> None:
    log = FakeLog({seq: frame(seq) for seq in range(1, 8)})
    s = sequencer(log, start=5)  # the socket started at seq 5
    assert seqs(s.offer(6, frame(6), 0.0)) == [6]
    assert seqs(await s.resume(2)) == [3, 4, 5]  # (2, floor=5]: not 6, already sent live
    assert await s.resume(2) == []  # nothing twice
    assert s.floor == 2


async def test_resume_ahead_of_the_log_or_too_far_behind_is_a_resync() -> None:
    s = sequencer(FakeLog({1: frame(1)}), start=1)
    assert orjson.loads((await s.resume(9))[0])["type"] == "resync_required"
    far = sequencer(FakeLog({seq: frame(seq) for seq in range(1, 50)}), start=49, max_replay=10)
    [resync] = await far.resume(0)
    assert orjson.loads(resync)["reason"] == "too far behind to replay"

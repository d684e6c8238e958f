"""The turn writer under load: one round in flight per worker, and what arrives meanwhile shares the next round."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from server import protocol
from server.chat.writer import TurnWriter
from server.db.turnstore.base import Accepted, AcceptItem, AcceptStatus, Finished, FinishItem, TurnStore


class GatedStore:
    """`commit` records each round's writers and holds the first round until `release`."""

    def __init__(self) -> None:
        self.rounds: list[list[int]] = []
        self.release = asyncio.Event()
        self.first_running = asyncio.Event()

    async def commit(
        self, accepts: Sequence[AcceptItem], finishes: Sequence[FinishItem], **_: Any
    ) -> tuple[list[Accepted], list[Finished]]:
        self.rounds.append([item.user_id for item in accepts] + [item.user_id for item in finishes])
        if len(self.rounds) == 1:
            self.first_running.set()
            await self.release.wait()
        return [Accepted(status=AcceptStatus.NOT_FOUND) for _ in accepts], [Finished(ended=False) for _ in finishes]


def accept(user_id: int) -> AcceptItem:
    now = datetime.now(UTC)
    return AcceptItem(
        user_id=user_id,
        conversation_id=None,
        title="t",
        client_msg_id=f"m{user_id}",
        turn_id=f"t{user_id}",
        content="hello",
        created_at=now,
        message_frame=protocol.message_event_text(
            role="user", content="hello", created_at=now, turn_id=f"t{user_id}", client_msg_id=f"m{user_id}"
        ),
        start_frame=protocol.turn_start_text(f"t{user_id}"),
    )


async def test_writes_that_arrive_while_a_round_runs_share_the_next_round() -> None:
    store = GatedStore()
    writer = TurnWriter(cast(TurnStore, store), worker_id="w", max_concurrent_turns=3)
    first = writer.accept(accept(1), lambda result: result)
    await store.first_running.wait()
    later = [writer.accept(accept(user), lambda result: result) for user in (2, 3, 4)]
    for _ in range(5):
        await asyncio.sleep(0)  # loop rounds pass: nothing else may start while the first round runs
    assert store.rounds == [[1]]
    store.release.set()
    await asyncio.gather(first, *later)
    assert store.rounds == [[1], [2, 3, 4]]
    assert (writer.rounds, writer.writes) == (2, 4)

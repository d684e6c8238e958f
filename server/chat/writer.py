"""The turn's writes of this worker, one statement per round: accepted messages and finished replies together.

Accepting a message and finishing a reply each lock the user's row and commit (a WAL flush).
Run as separate statements, one user's accept and another's finish queue behind each other's
locks and flushes; here every write submitted during one event-loop round goes into ONE
statement (`TurnStore.commit`), with at most one write per user in it, and one round in flight:
what arrives while a round runs waits for the next one, so rounds grow with the load, and
PostgreSQL runs one of this worker's rounds at a time. With two in flight the rounds stayed at
one write each and the two contended: 1.07 ms of PostgreSQL CPU per turn at 500 turns/s against
0.95, and a ceiling of 675 turns/s against 1,000 (`bench/README.md`). At low load nothing is in
flight and a round starts at once; a round stuck on a lock held elsewhere is cancelled by
PostgreSQL after TURN_STATEMENT_TIMEOUT, so it cannot hold the others for long. What must follow
a commit (the ack, starting the turn, publishing) runs in the round, through each write's `after`
callback, never in the caller.
A round the database refuses is written again in halves, down to one write per statement, so a
write it cannot store fails alone; a database that cannot be reached fails the whole round (each write's
caller retries it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from server.chat.batching import Again, GroupCommit
from server.db.engine import is_refused
from server.db.turnstore.base import Accepted, AcceptItem, Finished, FinishItem, TurnStore

Result = Accepted | Finished


@dataclass(slots=True)
class _Accept:
    item: AcceptItem
    after: Callable[[Accepted], Accepted | Again]
    """Called with the committed result, in the round; AGAIN runs the write again in a later round."""


@dataclass(slots=True)
class _Finish:
    item: FinishItem
    after: Callable[[Finished], Finished | Again]


class TurnWriter:
    def __init__(self, store: TurnStore, *, worker_id: str, max_concurrent_turns: int, max_in_flight: int = 1) -> None:
        self._store = store
        self._worker_id = worker_id
        self._max_concurrent = max_concurrent_turns
        self._rounds: GroupCommit[_Accept | _Finish, Result] = GroupCommit(
            # Only a refusal is split: nothing was written, and smaller statements tell whose write it was.
            self._flush,
            name="turn-writes",
            max_in_flight=max_in_flight,
            isolate=is_refused,
        )

    @property
    def rounds(self) -> int:
        return self._rounds.batches

    @property
    def writes(self) -> int:
        return self._rounds.items

    def accept(self, item: AcceptItem, after: Callable[[Accepted], Accepted | Again]) -> asyncio.Future[Result]:
        return self._rounds.submit(item.user_id, _Accept(item, after))

    def finish(self, item: FinishItem, after: Callable[[Finished], Finished | Again]) -> asyncio.Future[Result]:
        return self._rounds.submit(item.user_id, _Finish(item, after))

    async def drain(self) -> None:
        await self._rounds.drain()

    async def _flush(self, batch: list[_Accept | _Finish]) -> list[Result | Again]:
        accepts = [write for write in batch if isinstance(write, _Accept)]
        finishes = [write for write in batch if isinstance(write, _Finish)]
        accepted, finished = await self._store.commit(
            [write.item for write in accepts],
            [write.item for write in finishes],
            worker_id=self._worker_id,
            max_concurrent=self._max_concurrent,
        )
        answers: dict[int, Result | Again] = {}
        for accept, result in zip(accepts, accepted, strict=True):
            answers[id(accept)] = accept.after(result)
        for finish, done in zip(finishes, finished, strict=True):
            answers[id(finish)] = finish.after(done)
        return [answers[id(write)] for write in batch]

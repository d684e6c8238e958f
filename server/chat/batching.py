"""Group commit: the items submitted during one event-loop iteration run as one batch (one statement, one commit).

At low load a batch holds one item and starts on the next loop iteration, so batching adds
nothing measurable to the ack (`bench/` measures it). Under load, items that arrive while
`max_in_flight` batches are running wait for the next one, so batches grow with the load and
the per-statement cost is shared. A batch holds at most one item per key (a user): their seqs
are taken once per statement, and two batches never contend for one user's row.

A batch that fails is run again in halves, and so on down to single items (unless `isolate`
says the failure is not the items' doing, such as a database that cannot be reached): one item
the database refuses then fails only itself, not the other users' items that shared its statement.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class Again:
    """A result meaning "run this item again, in a later batch" (its data changed under it)."""


AGAIN = Again()
MAX_ATTEMPTS = 10
Flush = Callable[[list[ItemT]], Awaitable[Sequence[ResultT | Again]]]


class _Failed:
    """The outcome of an item whose own statement failed."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class GroupCommit(Generic[ItemT, ResultT]):
    def __init__(
        self,
        flush: Flush[ItemT, ResultT],
        *,
        name: str,
        max_batch: int = 200,
        max_in_flight: int = 2,
        isolate: Callable[[Exception], bool] = lambda _exc: True,
    ) -> None:
        """`isolate(error)`: whether a failed batch is worth running again in smaller parts."""
        self._flush = flush
        self._isolate = isolate
        self._name = name
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[int, ItemT, asyncio.Future[ResultT]]] = deque()
        self._attempts: dict[asyncio.Future[ResultT], int] = {}
        self._busy: set[int] = set()
        self._running: set[asyncio.Task[None]] = set()
        self._scheduled = False
        self.batches = 0
        self.items = 0

    def submit(self, key: int, item: ItemT) -> asyncio.Future[ResultT]:
        """Queue `item`; the future resolves with its result once its batch committed.

        The batch runs whether or not anyone still awaits the future (callers shield it): what
        must follow a commit happens inside `flush`, never in the caller.
        """
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._queue.append((key, item, future))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)
        return future

    async def drain(self) -> None:
        """Wait until everything submitted so far has run."""
        while self._queue or self._running:
            if self._running:
                await asyncio.wait(set(self._running))
            else:
                await asyncio.sleep(0)  # a batch is scheduled for the next iteration

    def _kick(self) -> None:
        self._scheduled = False
        while self._queue and len(self._running) < self._max_in_flight:
            batch = self._take()
            if not batch:
                return  # every queued key is in a running batch: the next one starts when it ends
            task = asyncio.create_task(self._run(batch), name=f"{self._name}-batch")
            self._running.add(task)

    def _take(self) -> list[tuple[int, ItemT, asyncio.Future[ResultT]]]:
        batch: list[tuple[int, ItemT, asyncio.Future[ResultT]]] = []
        keys: set[int] = set()
        later: deque[tuple[int, ItemT, asyncio.Future[ResultT]]] = deque()
        while self._queue and len(batch) < self._max_batch:
            entry = self._queue.popleft()
            if entry[0] in self._busy or entry[0] in keys:
                later.append(entry)
            else:
                keys.add(entry[0])
                batch.append(entry)
        later.extend(self._queue)
        self._queue = later
        self._busy |= keys
        return batch

    async def _run(self, batch: list[tuple[int, ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            results = await self._outcomes(batch)
        except BaseException as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.batches += 1
            self.items += len(batch)
            for entry, result in zip(batch, results, strict=True):
                future = entry[2]
                if isinstance(result, Again):
                    attempts = self._attempts.get(future, 1)
                    if attempts < MAX_ATTEMPTS:
                        self._attempts[future] = attempts + 1
                        self._queue.append(entry)
                        continue
                    future.set_exception(RuntimeError(f"{self._name}: gave up after {attempts} attempts"))
                    continue
                self._attempts.pop(future, None)
                if future.done():
                    continue
                if isinstance(result, _Failed):
                    future.set_exception(result.error)
                else:
                    future.set_result(result)
        finally:
            for key, _, _ in batch:
                self._busy.discard(key)
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)
            if self._queue and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._kick)

    async def _outcomes(
        self, batch: list[tuple[int, ItemT, asyncio.Future[ResultT]]]
    ) -> Sequence[ResultT | Again | _Failed]:
        """The batch's results; if its statement fails, those of its halves, down to single items."""
        try:
            return await self._flush([item for _, item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self._isolate(exc):
                raise
            logger.warning("%s: a batch of %d failed (%r); splitting it", self._name, len(batch), exc)
        return await self._bisect([item for _, item, _ in batch])

    async def _bisect(self, items: list[ItemT]) -> list[ResultT | Again | _Failed]:
        # Halves, not one statement per item: one bad item among n costs about 2 log2(n) statements.
        outcomes: list[ResultT | Again | _Failed] = []
        middle = len(items) // 2
        for half in (items[:middle], items[middle:]):
            try:
                outcomes.extend(await self._flush(half))
            except Exception as exc:
                if len(half) == 1 or not self._isolate(exc):
                    outcomes.extend(_Failed(exc) for _ in half)
                else:
                    outcomes.extend(await self._bisect(half))
        return outcomes

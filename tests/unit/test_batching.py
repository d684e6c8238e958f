"""Group commit: a batch whose statement fails is run again in halves down to single items: a bad item fails alone."""

from __future__ import annotations

import asyncio

import pytest

from server.chat.batching import GroupCommit


class Refused(Exception):
    """What the flush raises when a batch holds a bad item (as a database refuses a statement)."""


class Unreachable(Exception):
    """What the flush raises for every batch (as a database that cannot be reached)."""


def make(*, isolate: bool, down: bool = False) -> tuple[GroupCommit[str, str], list[list[str]]]:
    statements: list[list[str]] = []

    async def flush(items: list[str]) -> list[str]:
        statements.append(list(items))
        if down:
            raise Unreachable()
        if any(item.startswith("bad") for item in items):
            raise Refused(items)
        return [item.upper() for item in items]

    return GroupCommit(flush, name="test", isolate=lambda exc: isolate and isinstance(exc, Refused)), statements


async def test_a_refused_item_fails_alone_and_the_others_of_its_batch_commit() -> None:
    commit, statements = make(isolate=True)
    futures = [commit.submit(key, item) for key, item in enumerate(["one", "bad", "two"])]
    done = await asyncio.gather(*futures, return_exceptions=True)
    assert done[0] == "ONE" and done[2] == "TWO"
    assert isinstance(done[1], Refused) and done[1].args == (["bad"],)  # its own statement's error
    assert statements == [["one", "bad", "two"], ["one"], ["bad", "two"], ["bad"], ["two"]]  # halves
    assert (commit.batches, commit.items) == (1, 3)


async def test_one_refused_item_among_many_costs_a_few_statements_not_one_each() -> None:
    commit, statements = make(isolate=True)
    items = [f"item-{i}" for i in range(64)]
    items[37] = "bad-37"
    done = await asyncio.gather(*(commit.submit(k, item) for k, item in enumerate(items)), return_exceptions=True)
    assert [i for i, outcome in enumerate(done) if isinstance(outcome, Refused)] == [37]
    assert done[0] == "ITEM-0" and done[63] == "ITEM-63"
    assert len(statements) == 1 + 2 * 6  # the batch, then two halves per level down to the item


async def test_without_isolation_the_whole_batch_fails_with_one_statement() -> None:
    commit, statements = make(isolate=False)
    futures = [commit.submit(key, item) for key, item in enumerate(["one", "bad"])]
    done = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(outcome, Refused) for outcome in done)
    assert statements == [["one", "bad"]]


async def test_a_failure_that_is_not_the_items_doing_is_not_split() -> None:
    commit, statements = make(isolate=True, down=True)
    futures = [commit.submit(key, item) for key, item in enumerate(["one", "two", "three"])]
    done = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(outcome, Unreachable) for outcome in done)
    assert statements == [["one", "two", "three"]]  # not three more statements against a database that is away


async def test_a_lone_refused_item_is_not_run_twice() -> None:
    commit, statements = make(isolate=True)
    with pytest.raises(Refused):
        await commit.submit(1, "bad")
    assert statements == [["bad"]]

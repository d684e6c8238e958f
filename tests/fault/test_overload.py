"""More turns than a worker admits: the excess is refused at once (`overloaded`) and not stored; the rest are done."""

from __future__ import annotations

import asyncio
import time

from tests.fault.deployment import Deployment
from tests.support.timing import TIMEOUT

SLOTS = 3
LONG = "o" * 1600


async def test_overload_sheds_the_excess_and_serves_the_rest(deployment: Deployment) -> None:
    server = await deployment.start(max_turns_in_flight=SLOTS)
    people = [await deployment.user(server) for _ in range(SLOTS * 3)]
    followers = [await deployment.follow(person, server) for person in people]
    started = time.monotonic()
    sent = await asyncio.gather(*(f.chat(LONG) for f in followers))
    answers = await asyncio.gather(*(f.answer(m) for f, m in zip(followers, sent, strict=True)))
    answered_within = time.monotonic() - started
    acked = [a for a in answers if a["type"] == "ack"]
    refused = [a for a in answers if a["type"] == "error"]
    assert len(acked) == SLOTS, answers
    assert {a["code"] for a in refused} == {"overloaded"} and all(a["retry_after"] >= 1 for a in refused)
    assert answered_within < 2.0 + TIMEOUT / 10, answered_within  # refused at once, not queued behind the turns
    for follower, answer in zip(followers, answers, strict=True):
        if answer["type"] == "ack":
            await follower.wait_for("turn.end", turn_id=answer["turn_id"], timeout=TIMEOUT * 2)
    # Once the accepted turns are done, a refused client's retry (same client_msg_id) goes through.
    retrier, message, refusal = next(
        (f, m, a) for f, m, a in zip(followers, sent, answers, strict=True) if a["type"] == "error"
    )
    retrier.forget(refusal)
    await retrier.chat(LONG, client_msg_id=message)
    again = await retrier.answer(message)
    assert again["type"] == "ack", again
    await retrier.wait_for("turn.end", turn_id=again["turn_id"], timeout=TIMEOUT * 2)
    report = await deployment.check()
    assert report.acked == SLOTS + 1 and report.refused == len(refused) - 1 and report.statuses == {"done": SLOTS + 1}

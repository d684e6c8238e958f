"""Redis and PostgreSQL fail under two workers: killed and restarted, paused (a hung host), connections cut."""

from __future__ import annotations

import pytest

from tests.fault.deployment import Deployment
from tests.support.invariants import Follower
from tests.support.live import ServerProcess
from tests.support.relay import Mode, Relay
from tests.support.timing import TIMEOUT

REPLY = "y" * 400


async def two_workers(deployment: Deployment) -> tuple[ServerProcess, ServerProcess, Follower, Follower, Follower]:
    """Two workers; a user followed on both (one chats, one watches), another user on the second."""
    a = await deployment.start()
    b = await deployment.start()
    alice, bob = await deployment.user(a), await deployment.user(b)
    sender = await deployment.follow(alice, a)
    watcher = await deployment.follow(alice, b)
    other = await deployment.follow(bob, b)
    return a, b, sender, watcher, other


async def turns(follower: Follower, count: int, label: str, *, timeout: float = TIMEOUT) -> list[dict[str, object]]:
    """`count` turns one after another in one conversation, each acked and ended on the sender's socket."""
    acks: list[dict[str, object]] = []
    conversation = None
    for n in range(count):
        answer = await follower.answer(await follower.chat(f"{label} {n} {REPLY}", conversation), timeout=timeout)
        assert answer["type"] == "ack", answer
        conversation = answer["conversation_id"]
        acks.append(answer)
        await follower.wait_for("turn.end", turn_id=answer["turn_id"], timeout=timeout)
    return acks


@pytest.mark.parametrize("fault", ["kill", "pause"])
async def test_redis_down_or_hung_chat_goes_on_and_fan_out_catches_up(deployment: Deployment, fault: str) -> None:
    _, _, sender, watcher, other = await two_workers(deployment)
    await turns(sender, 1, "before")
    if fault == "kill":
        await deployment.redis.kill()
    else:
        deployment.redis.pause()  # the port accepts, nothing answers: only timeouts notice
    during = await turns(sender, 3, "during")  # acked and ended without Redis: its ack path never waits on it
    await turns(other, 1, "elsewhere")
    if fault == "kill":
        await deployment.redis.start()
    else:
        deployment.redis.resume()
    # The other worker's socket catches up from the event log once Redis answers again.
    await watcher.wait_for("turn.end", turn_id=during[-1]["turn_id"], timeout=TIMEOUT * 3)
    report = await deployment.check()
    assert report.acked == 5 and report.statuses == {"done": 5}


async def test_postgres_restart_mid_traffic(deployment: Deployment) -> None:
    _, _, sender, _, other = await two_workers(deployment)
    await turns(sender, 1, "before")
    await deployment.cluster.restart()  # every pooled connection is now dead
    # The first statements after the restart may fail over dead connections: the client retries
    # an `unavailable` with the same client_msg_id, as clients do, until it is acked.
    await _retried_turn(sender, "after the restart")
    await _retried_turn(other, "after the restart")
    report = await deployment.check()
    assert report.acked == 3 and report.statuses == {"done": 3}


async def test_postgres_backends_terminated_mid_turn(deployment: Deployment) -> None:
    _, _, sender, watcher, _ = await two_workers(deployment)
    ack = await sender.answer(await sender.chat("z" * 2000))
    await watcher.wait_for("delta", turn_id=ack["turn_id"])
    cut = await deployment.cluster.terminate_backends(deployment.database)
    assert cut > 0
    # The running turn still stores its reply (retried at its end), and new turns run.
    end = await watcher.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
    assert end["status"] == "done", end
    await _retried_turn(sender, "after the cut", conversation=ack["conversation_id"])
    report = await deployment.check()
    assert report.statuses == {"done": 2}


async def _retried_turn(follower: Follower, text: str, *, conversation: object = None) -> None:
    client_msg_id = None
    for _ in range(10):
        client_msg_id = await follower.chat(text, conversation, client_msg_id)  # type: ignore[arg-type]
        answer = await follower.answer(client_msg_id)
        if answer["type"] == "ack":
            await follower.wait_for("turn.end", turn_id=answer["turn_id"], timeout=TIMEOUT * 2)
            return
        assert answer["code"] == "unavailable", answer
        follower.forget(answer)
    raise AssertionError(f"{text!r} never acked")


@pytest.mark.parametrize("mode", ["half_open", "hang"])
async def test_the_network_to_redis_goes_silent(deployment: Deployment, mode: Mode) -> None:
    """Between the workers and Redis: packets stop (half-open: held, then delivered late) or connections hang."""
    async with Relay("127.0.0.1", deployment.redis.port) as relay:
        deployment.settings.update(redis_url=f"redis://127.0.0.1:{relay.port}/0")
        _, _, sender, watcher, other = await two_workers(deployment)
        await turns(sender, 1, "before")
        relay.set(mode)
        during = await turns(sender, 3, "during")
        await turns(other, 1, "elsewhere")
        relay.set("pass")
        await watcher.wait_for("turn.end", turn_id=during[-1]["turn_id"], timeout=TIMEOUT * 3)
        report = await deployment.check()
    assert report.acked == 5 and report.statuses == {"done": 5}

"""A transaction that fails at COMMIT: nothing it did may reach a client; the next change goes on as if it never ran.

The failure is deterministic: a deferred constraint trigger, on this test's own database, raises at
commit for rows carrying a marker (a chat message, a task title). Everything of the statement ran and
returned; only the commit refuses. Code that acked or published before the commit would be caught
here: the client would hold an ack for a message that does not exist, or an event whose seq the
next successful change reuses (a phantom, and the real event lost behind it).
"""

from __future__ import annotations

import httpx
import pytest

from tests.fault.deployment import Deployment
from tests.support.invariants import Follower
from tests.support.live import ServerProcess
from tests.support.timing import TIMEOUT

POISON = "POISON-AT-COMMIT"

REFUSE_AT_COMMIT = f"""
CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'refused at commit (test trigger on %)', TG_TABLE_NAME;
END $$;
CREATE CONSTRAINT TRIGGER refuse_poisoned_message AFTER INSERT ON messages
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.content LIKE '%{POISON}%') EXECUTE FUNCTION refuse_at_commit();
CREATE CONSTRAINT TRIGGER refuse_poisoned_task AFTER INSERT ON tasks
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.title LIKE '%{POISON}%') EXECUTE FUNCTION refuse_at_commit();
"""


@pytest.fixture
async def server(deployment: Deployment) -> ServerProcess:
    await deployment.cluster.execute(REFUSE_AT_COMMIT, database=deployment.database)
    return await deployment.start()


async def test_a_message_whose_commit_fails_gets_an_error_and_no_ack(
    deployment: Deployment, server: ServerProcess
) -> None:
    user = await deployment.user(server)
    sender = await deployment.follow(user, server)
    watcher = await deployment.follow(user, server)
    first = await sender.answer(await sender.chat("a first message"))
    await sender.wait_for("turn.end", turn_id=first["turn_id"])
    conversation = first["conversation_id"]

    poisoned = await sender.chat(f"this one {POISON}", conversation)
    answer = await sender.answer(poisoned)
    assert answer["type"] == "error", f"a message that was never committed got {answer}"
    assert sender.find("ack", client_msg_id=poisoned) is None
    await sender.expect_nothing("ack")  # no late ack either

    # The conversation is free: the next message is accepted and its turn runs.
    after = await sender.answer(await sender.chat("and after it", conversation))
    assert after["type"] == "ack", after
    await watcher.wait_for("turn.end", turn_id=after["turn_id"])
    async with httpx.AsyncClient(base_url=server.base_url, headers=user.headers, timeout=TIMEOUT) as http:
        history = (await http.get(user.url(f"/conversations/{conversation}/messages"))).json()["data"]
    assert [m["content"] for m in history if m["role"] == "user"] == ["a first message", "and after it"]
    report = await deployment.check()
    assert report.acked == 2 and report.statuses == {"done": 2}


async def test_a_change_whose_commit_fails_publishes_nothing_and_leaves_no_gap(
    deployment: Deployment, server: ServerProcess
) -> None:
    user = await deployment.user(server)
    watcher = await deployment.follow(user, server)
    sender = await deployment.follow(user, server)
    async with httpx.AsyncClient(base_url=server.base_url, headers=user.headers, timeout=TIMEOUT) as http:
        created = await http.post(user.url("/tasks"), json={"title": "a first task"})
        assert created.status_code == 201, created.text
        before = (await watcher.wait_for("task.created"))["seq"]

        # A task change (REST, through the outbox) and a chat message (the turn's one statement),
        # each failing at commit after its events were recorded with the next seqs.
        refused = await http.post(user.url("/tasks"), json={"title": f"a task {POISON}"})
        assert refused.status_code >= 500 and refused.json()["code"], refused.text
        poisoned = await sender.chat(f"a message {POISON}")
        assert (await sender.answer(poisoned))["type"] == "error"
        await _nothing_after(watcher, before)

        # The next successful changes take exactly the seqs the failed ones would have used.
        created = await http.post(user.url("/tasks"), json={"title": "a second task"})
        assert created.status_code == 201, created.text
        event = await watcher.wait_for("task.created", seq=before + 1)
        assert event["task"]["title"] == "a second task"
    ack = await sender.answer(await sender.chat("a clean message"))
    assert ack["type"] == "ack" and ack["seq"] == before + 2
    await watcher.wait_for("turn.end", turn_id=ack["turn_id"])
    titles = [f["task"]["title"] for f in watcher.frames if f["type"] == "task.created"]
    assert titles == ["a first task", "a second task"]
    assert not [f for f in watcher.frames if POISON in str(f)], "a refused change reached a socket"
    await deployment.check()  # every frame the sockets got is the logged one: no phantom, no gap


async def _nothing_after(follower: Follower, seq: int) -> None:
    await follower.expect_nothing()
    late = [f for f in follower.frames if f.get("seq") is not None and f["seq"] > seq and f["type"] != "ack"]
    assert not late, f"events published for changes that never committed: {late}"

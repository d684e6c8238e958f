"""The model server fails in every way a network service can, under two workers: each turn ends, the next one runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.openai_server import (
    Disconnect,
    ErrorStatus,
    FakeOpenAIServer,
    Finish,
    Flush,
    Hold,
    Pause,
    Raw,
    Response,
    Stream,
    Text,
    Truncate,
    text_reply,
)
from tests.fault.deployment import Deployment
from tests.support.timing import QUIET, TIMEOUT

IDLE = QUIET * 3
"""LLM_IDLE_TIMEOUT of the servers here: a stall is noticed fast."""

FAILURES: dict[str, Response] = {
    "500": ErrorStatus(500, "the model server broke"),
    "hang": Stream(Flush(), Hold()),
    "tcp-drop": Stream(Text("Half a rep"), Disconnect()),
    "garbage": Stream(Text("Some"), Raw(b"{this is not json")),
    "too-slow": Stream(Text("Slow"), Pause(IDLE * 4), Text(" and slower"), Finish("stop")),
    "no-finish-reason": Stream(Text("It ends here"), Truncate()),
}


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as fake:
        yield fake


async def test_every_model_failure_ends_its_turn_and_the_conversation_goes_on(
    deployment: Deployment, model: FakeOpenAIServer
) -> None:
    deployment.settings.update(
        assistant_provider="openai",
        llm_base_url=model.base_url,
        llm_model="fake-model",
        llm_api_key="sk-test",
        llm_timeout=TIMEOUT,
        llm_idle_timeout=IDLE,
        llm_max_retries=0,  # every failure reaches the turn; retries are the provider tests' subject
    )
    a, b = await deployment.start(), await deployment.start()
    user = await deployment.user(a)
    sender = await deployment.follow(user, a)
    watcher = await deployment.follow(user, b)
    conversation = None
    for name, failure in FAILURES.items():
        model.queue(failure)
        ack = await sender.answer(await sender.chat(f"fail with {name}", conversation))
        assert ack["type"] == "ack", ack
        conversation = ack["conversation_id"]
        end = await watcher.wait_for("turn.end", turn_id=ack["turn_id"], timeout=TIMEOUT * 2)
        assert end["status"] == "failed", (name, end)
    model.queue(text_reply("All good again."))
    ack = await sender.answer(await sender.chat("and now?", conversation))
    end = await watcher.wait_for("turn.end", turn_id=ack["turn_id"])
    assert end["status"] == "done"
    deployment.settings.clear()
    # The servers' fresh turns of `check` need an answer from the model too.
    model.queue(*[text_reply("Fine.") for _ in deployment.live])
    report = await deployment.check()
    assert report.statuses == {"failed": len(FAILURES), "done": 1}

"""The assistant against llmock, a third-party chaos server for LLM clients, and llmock's verdict on our client.

Every request to llmock may get a 429 (15 %) or a 503 (10 %), and every stream may be cut
without a finish reason (20 %), dropped (15 %), corrupted (10 %) or stalled for 5 s (10 %):
only about one attempt in three gets through untouched. 25 turns run through the real provider,
then 25 more through the app's REST chat on the embedded stack; each turn is a tool call and a
text answer, so 50 streamed model calls per test. llmock then judges every attempt it saw.

Why these settings:
- Faults hit the first chunk after the role chunk (`max_after_chunks=1`), before any text reaches
  the user: the only place where llmock's rule (retry every transient fault) and ours (never retry
  what the user has already seen) agree. After that, llmock would read an honest `failed` turn as
  an accepted cut, since it cannot see the turn. Faults after text are tested against the fake
  server (`test_openai_provider.py`, `test_assistant_openai.py`).
- Streams are paced (20 ms a chunk), as a model generates: unpaced, llmock has written a short
  stream to the end before the client, having read the corrupt chunk, hangs up, and counts the
  hang-up as reading on.
- 9 retries (10 attempts: llmock calls more than 10 a storm), so a model call fails only when
  ten attempts in a row are broken. The first backoff is the default 0.5 s: llmock measures the
  gaps on its side, and on a small loaded machine they carry up to ~0.15 s of noise, which must
  not hide a doubling. The longest is 2 s, so the slowest turn stays short.

llmock (0.2) has no seed: it draws every fault from its process's `random`, and concurrent turns
reach it in no fixed order, so no run is like another. The assertions hold for any draw:
- at least 20 of 25 answered: a turn fails with probability 1 - (1 - 0.66^10)^2 = 3.2 %, so
  more than 5 of 25 fail about once in 8,000 runs;
- the verdict may hold only what llmock cannot tell from a client fault: a model call that used
  all ten attempts and whose last one was cut or corrupt reads, by its last attempt alone, as
  "accepted". Any other finding, and those on a call with fewer attempts, fail the test.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from server.app import create_app
from server.assistant.agent import Agent
from server.assistant.providers.base import ChatMessage, ProviderError, ToolCallRequest, TurnContext
from server.assistant.providers.openai import OpenAIProvider
from server.assistant.providers.retry import RetryPolicy
from server.assistant.tools import tool_specs
from tests.support.chaos_server import Chaos, ChaosServer, chaos_server
from tests.support.live import LiveServer, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import SCALE, TIMEOUT
from tests.support.users import AppUser, MakeUser

CHAOS = Chaos(
    error_rates={429: 0.15, 503: 0.10},
    stream_faults={"truncate": 0.20, "disconnect": 0.15, "malformed": 0.10, "stall": 0.10},
    stall_seconds=5.0,
    chunk_delay_ms=20,
    max_after_chunks=1,
    response_style="static",  # four words: short streams keep the pacing cheap
)
TURNS = 25
ANSWERED_AT_LEAST = 20
MAX_RETRIES = 9
BACKOFF, BACKOFF_MAX = 0.5, 2.0
IDLE = 1.0 * SCALE
"""LLM_IDLE_TIMEOUT here: well under llmock's 5 s stall, well over a paced chunk on a loaded machine."""
EXCUSABLE = {"truncated_stream_accepted", "malformed_chunk_ignored"}
"""What llmock reports for a call whose last attempt was cut or corrupt, however many came before."""


@pytest.fixture(scope="module")
async def chaos() -> AsyncIterator[ChaosServer]:
    async with chaos_server(CHAOS) as server:
        yield server


def unexcused(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    """The findings that are the client's fault: all but llmock's reading of a call that ran out of attempts.

    Every model call of these tests sends a body of its own (its own prompt), so the requests
    with the same fingerprint are exactly the attempts of one call.
    """
    fingerprint = {request["seq"]: request["fingerprint"] for request in verdict["requests"]}
    attempts = collections.Counter(fingerprint.values())
    return [
        finding
        for finding in verdict["findings"]
        if not (finding["code"] in EXCUSABLE and attempts[fingerprint[finding["requests"][-1]]] == MAX_RETRIES + 1)
    ]


def assert_judged_clean(verdict: dict[str, Any], failed: int) -> None:
    assert verdict["faults_injected"] >= TURNS, verdict["report"]  # the chaos did happen
    assert unexcused(verdict) == [], verdict["report"]
    assert len(verdict["findings"]) <= failed, verdict["report"]  # each excused one is a call that failed


# --- the provider --------------------------------------------------------------------------------


async def test_provider_gets_a_clean_verdict(chaos: ChaosServer) -> None:
    await chaos.reset()
    provider = OpenAIProvider(
        model="chaos-model",
        base_url=chaos.base_url,
        timeout=TIMEOUT,
        idle_timeout=IDLE,
        retry=RetryPolicy(max_retries=MAX_RETRIES, base_delay=BACKOFF, max_delay=BACKOFF_MAX),
    )
    agent = Agent(provider, tool_specs())
    executed: collections.Counter[int] = collections.Counter()

    async def turn(n: int) -> str | ProviderError:
        async def execute(call: ToolCallRequest) -> Any:
            executed[n] += 1
            return {"status": "ok", "turn": n}

        ask = [ChatMessage(role="user", content=f"Add a task to buy {n} apples")]
        try:
            return "".join([text async for text in agent.run(ask, execute, TurnContext(now=datetime.now(UTC)))])
        except ProviderError as exc:
            return exc

    try:
        results = await asyncio.gather(*(turn(n) for n in range(TURNS)))
    finally:
        await provider.aclose()
    verdict = await chaos.verdict()

    answered = [n for n, result in enumerate(results) if isinstance(result, str)]
    assert len(answered) >= ANSWERED_AT_LEAST, [str(result) for result in results]
    assert all(results[n] == "Mock response from chaos-model." for n in answered)
    # A tool ran once per turn that got that far, never twice, and never from a cut stream.
    assert all(executed[n] == 1 for n in answered) and max(executed.values()) == 1
    assert_judged_clean(verdict, failed=TURNS - len(answered))


# --- the app, end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def server(chaos: ChaosServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """This module's app (SQLite, in-process broker) with the assistant on llmock; `make_user` signs up here."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('chaos') / 'app.db'}",
        assistant_provider="openai",
        llm_base_url=chaos.base_url,
        llm_model="chaos-model",
        llm_timeout=TIMEOUT,
        llm_idle_timeout=IDLE,
        max_concurrent_turns=TURNS,  # the turns run at once, in conversations of one user
        llm_max_retries=MAX_RETRIES,
        llm_retry_backoff=BACKOFF,
        llm_retry_backoff_max=BACKOFF_MAX,
    )
    async with serve_in_process(create_app(settings)) as live:
        yield live


async def histories(http: httpx.AsyncClient, user: AppUser) -> list[list[dict[str, Any]]]:
    """The messages of every conversation of `user`, oldest first."""
    conversations = (await http.get(user.url("/conversations?limit=100"), headers=user.headers)).json()["data"]
    result = []
    for conversation in conversations:
        path = user.url(f"/conversations/{conversation['id']}/messages")
        result.append((await http.get(path, headers=user.headers)).json()["data"])
    return result


async def test_rest_chat_gets_a_clean_verdict(chaos: ChaosServer, server: LiveServer, make_user: MakeUser) -> None:
    users = [await make_user() for _ in range(5)]
    await chaos.reset()

    async def turn(http: httpx.AsyncClient, n: int) -> httpx.Response:
        user = users[n % len(users)]
        message = {"message": f"Add a task to buy {n} pears"}
        return await http.post(user.url("/chat"), json=message, headers=user.headers)

    # A turn may retry for a while: longer than the shared client's 30 s, well within TURN_TIMEOUT.
    async with httpx.AsyncClient(base_url=server.base_url, timeout=TIMEOUT * 12) as http:
        responses = await asyncio.gather(*(turn(http, n) for n in range(TURNS)))
        verdict = await chaos.verdict()
        stored = [history for user in users for history in await histories(http, user)]

    answered = [response.json() for response in responses if response.status_code == 200]
    failed = [response for response in responses if response.status_code != 200]
    assert len(answered) >= ANSWERED_AT_LEAST, [response.text for response in failed]
    for body in answered:
        assert body["response"] == "Mock response from chaos-model."
        assert len(body["tool_calls"]) == 1  # run once, whatever was retried around it
    for response in failed:
        assert response.status_code == 502 and response.json()["code"] == "upstream", response.text
    # Every turn is stored with its outcome: a tool call at most once, and a failed reply without text,
    # since none had streamed.
    outcomes = collections.Counter(
        (tuple(m["role"] for m in history), history[-1]["status"], history[-1]["content"]) for history in stored
    )
    failed_before_the_tool, failed_after_it = (
        (("user", "assistant"), "failed", ""),
        (("user", "tool", "assistant"), "failed", ""),
    )
    assert outcomes[(("user", "tool", "assistant"), "done", "Mock response from chaos-model.")] == len(answered)
    assert outcomes[failed_before_the_tool] + outcomes[failed_after_it] == len(failed)
    assert sum(outcomes.values()) == TURNS
    assert_judged_clean(verdict, failed=len(failed))

"""Abuse limits through the real app on both stacks: each refuses over budget with Retry-After, and comes back.

Each test starts its own server with the limits it is about lowered (the suite's defaults are
high) and, on the production stack, a Redis prefix of its own, so no test spends another's budget.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import REGISTRY

from server.app import create_app
from server.settings import Settings
from tests.support.live import LiveServer, free_port, serve_in_process
from tests.support.settings import make_settings
from tests.support.timing import TIMEOUT, wait_until
from tests.support.users import AppUser, signup
from tests.support.wsclient import WSClient

Serve = Callable[..., Awaitable[LiveServer]]
WRONG = "not the password"
HOME, ELSEWHERE, ATTACKER = "203.0.113.5", "203.0.113.77", "198.51.100.7"
"""Client addresses, as a trusted proxy on loopback names them in X-Forwarded-For."""


@pytest.fixture
async def serve(stack_settings: Settings, redis_prefix: str) -> AsyncIterator[Serve]:
    """Start the stack's app with some settings changed; stopped at the end of the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> LiveServer:
            prefix = f"{redis_prefix}-limits-{secrets.token_hex(3)}"
            settings = stack_settings.model_copy(update={"redis_prefix": prefix, **overrides})
            return await stack.enter_async_context(serve_in_process(create_app(settings)))

        yield start


def http(live: LiveServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=live.base_url, timeout=TIMEOUT)


async def login(client: httpx.AsyncClient, email: str, password: str, via: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": via} if via else {}
    return await client.post("/api/auth/login", json={"email": email, "password": password}, headers=headers)


async def signup_from(client: httpx.AsyncClient, via: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": via} if via else {}
    body = {"email": f"limits-{secrets.token_hex(6)}@example.com", "password": "correct horse battery"}
    return await client.post("/api/auth/signup", json=body, headers=headers)


def assert_rate_limited(response: httpx.Response, *, within: int = 60) -> int:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    assert set(response.json()) == {"detail", "code"}
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= within
    assert f"retry in {retry_after} s" in response.json()["detail"]
    return retry_after


def refusals(limit: str) -> float:
    return REGISTRY.get_sample_value("todochat_rate_limited_total", {"limit": limit}) or 0.0


# --- login and signup -------------------------------------------------------------------------------


async def test_failed_logins_per_account_never_lock_out_a_client_that_signed_in_before(serve: Serve) -> None:
    live = await serve(rate_limit_login_account="3/minute", trusted_proxies=["127.0.0.1"])
    user = await signup(live.base_url)
    before = refusals("login_account")
    async with http(live) as client:
        assert (await login(client, user.email, user.password, HOME)).status_code == 200  # the user's own device
        for _ in range(3):
            assert (await login(client, user.email, WRONG, ATTACKER)).status_code == 401
        assert_rate_limited(await login(client, user.email, WRONG, ATTACKER))
        # Checked before the password: guessing right no longer helps, from any new address.
        assert_rate_limited(await login(client, user.email, user.password, ATTACKER))
        assert_rate_limited(await login(client, user.email.upper(), user.password, ELSEWHERE))
        # The rightful user, from where they logged in before, is not locked out by someone else's guesses.
        assert (await login(client, user.email, user.password, HOME)).status_code == 200
        # Other accounts are not affected.
        other = await signup(live.base_url)
        assert (await login(client, other.email, other.password, ATTACKER)).status_code == 200
    assert refusals("login_account") - before == 3


async def test_failed_logins_per_address_span_accounts(serve: Serve) -> None:
    live = await serve(rate_limit_login_ip="3/minute", trusted_proxies=["127.0.0.1"])
    user = await signup(live.base_url)
    async with http(live) as client:
        for _ in range(3):  # unknown accounts: a credential-stuffing run
            assert (
                await login(client, f"nobody-{secrets.token_hex(4)}@example.com", WRONG, ATTACKER)
            ).status_code == 401
        assert_rate_limited(await login(client, user.email, user.password, ATTACKER))
        assert (await login(client, user.email, user.password, HOME)).status_code == 200


async def test_login_attempts_per_address_count_successes_too(serve: Serve) -> None:
    live = await serve(rate_limit_login_attempts_ip="3/minute", trusted_proxies=["127.0.0.1"])
    user = await signup(live.base_url)
    async with http(live) as client:
        for _ in range(3):
            assert (await login(client, user.email, user.password, ATTACKER)).status_code == 200
        assert_rate_limited(await login(client, user.email, user.password, ATTACKER))
        assert (await login(client, user.email, user.password, HOME)).status_code == 200


async def test_signups_per_address_and_a_trusted_proxy_names_the_client(serve: Serve) -> None:
    live = await serve(rate_limit_signup_ip="2/minute", trusted_proxies=["127.0.0.0/8"])
    async with http(live) as client:
        assert [(await signup_from(client, ATTACKER)).status_code for _ in range(2)] == [201, 201]
        assert_rate_limited(await signup_from(client, ATTACKER))
        # The proxy's own address is not the client: other clients behind it have their own budget.
        assert (await signup_from(client, HOME)).status_code == 201
        # The client is the address nearest to the trusted proxy: what the client sent before it is not believed.
        assert_rate_limited(await signup_from(client, f"{HOME}, {ATTACKER}"))


@pytest.mark.parametrize("proxies", [[], ["10.0.0.0/8"]], ids=["no-proxies", "other-proxy"])
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(serve: Serve, proxies: list[str]) -> None:
    live = await serve(rate_limit_signup_ip="2/minute", trusted_proxies=proxies)
    async with http(live) as client:
        statuses = [(await signup_from(client, f"192.0.2.{n}")).status_code for n in range(2)]
        assert statuses == [201, 201]
        # A new spoofed address each time buys nothing: every request counts against the real peer.
        assert_rate_limited(await signup_from(client, "192.0.2.99"))


# --- chat turns ----------------------------------------------------------------------------------------


async def test_chat_turns_per_user_across_rest_and_websocket(serve: Serve) -> None:
    live = await serve(rate_limit_chat_turns="2/minute")
    user, other = await signup(live.base_url), await signup(live.base_url)
    before = refusals("chat_turns")
    async with http(live) as client, await WSClient.open(live.ws_url, user.token) as ws:
        first = await client.post(
            user.url("/chat"), json={"message": "one", "client_msg_id": "m-1"}, headers=user.headers
        )
        assert first.status_code == 200, first.text
        conversation_id = first.json()["conversation_id"]
        await ws.chat("two", conversation_id=conversation_id, client_msg_id="m-2")
        ack = await ws.receive("ack")
        await ws.receive("turn.end")

        # Over budget: refused on both surfaces, nothing persisted.
        refused = await client.post(user.url("/chat"), json={"message": "three"}, headers=user.headers)
        assert_rate_limited(refused)
        await ws.chat("four", conversation_id=conversation_id, client_msg_id="m-4")
        error = await ws.receive("error")
        assert error["code"] == "rate_limited" and error["ref"] == "m-4"
        assert isinstance(error["retry_after"], int) and 1 <= error["retry_after"] <= 60
        await ws.expect_nothing("message")
        history = await client.get(user.url(f"/conversations/{conversation_id}/messages"), headers=user.headers)
        assert [m["content"] for m in history.json()["data"] if m["role"] == "user"] == ["one", "two"]
        conversations = await client.get(user.url("/conversations"), headers=user.headers)
        assert conversations.json()["count"] == 1  # "three" opened no conversation

        # A retry of a message accepted earlier is not refused: it gets its ack, as always.
        await ws.chat("two", conversation_id=conversation_id, client_msg_id="m-2")
        assert await ws.receive("ack") == ack
        again = await client.post(
            user.url("/chat"), json={"message": "one", "client_msg_id": "m-1"}, headers=user.headers
        )
        assert again.status_code == 200 and again.json() == first.json()

        # The budget is the user's: someone else chats on.
        theirs = await client.post(other.url("/chat"), json={"message": "hello"}, headers=other.headers)
        assert theirs.status_code == 200
    assert refusals("chat_turns") - before == 2


# --- tool calls --------------------------------------------------------------------------------------------


async def test_task_changes_over_rest_with_a_lower_budget_for_deletions(serve: Serve) -> None:
    live = await serve(rate_limit_tool_calls="4/minute", rate_limit_destructive_calls="1/minute")
    user = await signup(live.base_url)
    async with http(live) as client:
        created = [
            await client.post(user.url("/tasks"), json={"title": f"task {n}"}, headers=user.headers) for n in range(2)
        ]
        first, second = (response.json()["id"] for response in created)
        assert (await client.delete(user.url(f"/tasks/{first}"), headers=user.headers)).status_code == 204
        assert_rate_limited(await client.delete(user.url(f"/tasks/{second}"), headers=user.headers))
        conversation = await client.post(user.url("/chat"), json={"message": "hi"}, headers=user.headers)
        gone = await client.delete(
            user.url(f"/conversations/{conversation.json()['conversation_id']}"), headers=user.headers
        )
        assert_rate_limited(gone)  # deleting a conversation is destructive too
        # 3 of 4 changes so far (refusals count nothing): one more, then the general budget is spent.
        complete = await client.patch(user.url(f"/tasks/{second}/complete"), headers=user.headers)
        assert complete.status_code == 200
        assert_rate_limited(await client.patch(user.url(f"/tasks/{second}"), json={"title": "x"}, headers=user.headers))
        assert_rate_limited(await client.post(user.url("/tasks"), json={"title": "one more"}, headers=user.headers))
        # Reads are not changes.
        tasks = await client.get(user.url("/tasks"), headers=user.headers)
        assert [(t["id"], t["title"], t["completed"]) for t in tasks.json()["data"]] == [(second, "task 1", True)]


async def test_the_assistant_and_mcp_share_the_tool_budget_and_explain_a_refusal(serve: Serve) -> None:
    live = await serve(rate_limit_tool_calls="2/minute", assistant_provider="rules")
    user = await signup(live.base_url)
    async with http(live) as client, await WSClient.open(live.ws_url, user.token) as ws:
        response = await client.post(user.url("/tasks"), json={"title": "Buy milk"}, headers=user.headers)
        assert response.status_code == 201
        async with mcp_client(live, user) as mcp:
            added = await mcp.call_tool("add_task", {"title": "Call mom"})
            assert not added.is_error
            refused = await mcp.call_tool("add_task", {"title": "Water plants"})
        assert refused.is_error
        result = orjson.loads(refused.content[0].text)
        assert result["error"] == "rate_limited" and 1 <= result["retry_after"] <= 60

        await ws.chat("add a task to book flights")
        frames = await ws.until("turn.end")
        tool_result = next(f for f in frames if f["type"] == "tool.result")
        assert tool_result["result"]["error"] == "rate_limited"
        reply = next(f for f in frames if f["type"] == "message" and f["message"]["role"] == "assistant")
        assert "can't change tasks that fast" in reply["message"]["content"]
        created = [f["task"]["title"] for f in ws.log if f["type"] == "task.created"]
        assert created == ["Buy milk", "Call mom"]  # from REST and MCP; nothing from the refused call
        tasks = await client.get(user.url("/tasks"), headers=user.headers)
        assert [t["title"] for t in tasks.json()["data"]] == ["Buy milk", "Call mom"]


def mcp_client(live: LiveServer, user: AppUser) -> Any:
    class Open:
        async def __aenter__(self) -> Client:
            self._stack = AsyncExitStack()
            transport = await self._stack.enter_async_context(httpx2.AsyncClient(headers=user.headers, timeout=TIMEOUT))
            return await self._stack.enter_async_context(
                Client(streamable_http_client(f"{live.base_url}/mcp", http_client=transport))
            )

        async def __aexit__(self, *exc_info: object) -> None:
            await self._stack.aclose()

    return Open()


# --- every limit comes back ----------------------------------------------------------------------------------

LIMITS = (
    "rate_limit_login_account",
    "rate_limit_login_ip",
    "rate_limit_login_attempts_ip",
    "rate_limit_signup_ip",
    "rate_limit_chat_turns",
    "rate_limit_tool_calls",
    "rate_limit_destructive_calls",
)


async def test_every_limit_comes_back_when_its_window_has_slid(serve: Serve) -> None:
    """All budgets at one per 3 s: spend each, see it refused, then see it accepted again within the window."""
    live = await serve(trusted_proxies=["127.0.0.1"], **dict.fromkeys(LIMITS, "1 per 3 seconds"))
    async with http(live) as client:
        created = await signup_from(client, "192.0.2.1")
        body = created.json()
        user = AppUser.from_auth(body, password="correct horse battery")
        tasks = user.url("/tasks")
        missing = 2**31 - 1
        # A deletion spends the destructive and the tool budgets (counted before the task is looked up).
        assert (await client.delete(f"{tasks}/{missing}", headers=user.headers)).status_code == 404
        assert (await login(client, user.email, WRONG, "192.0.2.2")).status_code == 401
        assert (await login(client, "nobody@example.com", WRONG, "192.0.2.3")).status_code == 401
        assert (await client.post(user.url("/chat"), json={"message": "hi"}, headers=user.headers)).status_code == 200

        requests: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "signup_ip": lambda: signup_from(client, "192.0.2.1"),
            "login_account": lambda: login(client, user.email, user.password, "192.0.2.4"),
            "login_ip": lambda: login(client, "nobody@example.com", WRONG, "192.0.2.3"),
            "login_attempts_ip": lambda: login(client, user.email, user.password, "192.0.2.2"),
            "chat_turns": lambda: client.post(user.url("/chat"), json={"message": "hi"}, headers=user.headers),
            # A deletion needs both budgets, so it is waited for before a creation spends the tool budget.
            "destructive_calls": lambda: client.delete(f"{tasks}/{missing}", headers=user.headers),
            "tool_calls": lambda: client.post(tasks, json={"title": "two"}, headers=user.headers),
        }
        for name, request in requests.items():
            response = await request()
            assert response.status_code == 429, name
            assert_rate_limited(response, within=3)
        for request in requests.values():
            await wait_until(accepted(request), step=0.1)


def accepted(request: Callable[[], Awaitable[httpx.Response]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await request()).status_code != 429

    return check


# --- storage outage ----------------------------------------------------------------------------------------------


async def test_chat_goes_on_without_delay_when_redis_is_unreachable(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down from the start: the limits fail open (chat, tools) or count per worker (login), and say so once."""
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/no-redis.db",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        rate_limit_chat_turns="1/minute",
        rate_limit_tool_calls="1/minute",
        rate_limit_login_account="2/minute",
    )
    caplog.set_level(logging.WARNING, logger="server.abuse")
    async with serve_in_process(create_app(settings)) as live, http(live) as client:
        user = await signup(live.base_url)
        async with await WSClient.open(live.ws_url, user.token) as ws:
            for n in range(3):  # over the chat budget: it is not enforced while its storage is down
                await ws.chat(f"during the outage {n}")
                await ws.receive("ack", timeout=2)  # promptly: no storage call is waited for per turn
                await ws.receive("turn.end")
        for n in range(2):
            response = await client.post(user.url("/tasks"), json={"title": f"task {n}"}, headers=user.headers)
            assert response.status_code == 201
        # Login failures are counted by this worker meanwhile.
        assert [(await login(client, user.email, WRONG)).status_code for _ in range(3)] == [401, 401, 429]
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("server.abuse")]
    assert len(warnings) == 1 and warnings[0].startswith("Rate-limit storage unavailable"), warnings

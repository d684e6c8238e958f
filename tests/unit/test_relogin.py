"""The CLI asks for the password once when the socket and a REST call both find the session gone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from client_demo import repl as repl_module
from client_demo.config import Login, TokenStore
from client_demo.errors import SessionExpiredError
from client_demo.repl import Repl

SERVER = "http://127.0.0.1:9"


def make_repl(tmp_path: Path) -> Repl:
    store = TokenStore(tmp_path)
    login = Login(SERVER, "ada@example.com", 7, token="old")
    store.save(login)
    return Repl(store=store, login=login, conversation_id=None)


async def test_a_call_sent_with_the_old_token_is_retried_without_a_second_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repl = make_repl(tmp_path)

    def no_prompt(prompt: str) -> str:
        raise AssertionError(f"asked again: {prompt}")

    monkeypatch.setattr(repl_module, "getpass", no_prompt)
    sent_with: list[str] = []

    async def call() -> str:
        sent_with.append(repl.login.token)
        if len(sent_with) == 1:
            # Answered after the socket's re-login (the password prompt held the loop meanwhile).
            repl.credentials.replace(Login(SERVER, "ada@example.com", 7, token="new"))
            raise SessionExpiredError("")
        return "ok"

    assert await repl._rest(call) == "ok"
    assert sent_with == ["old", "new"]


async def test_concurrent_relogins_prompt_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repl = make_repl(tmp_path)
    prompts: list[str] = []

    async def prompt_once(reason: str) -> str | None:
        prompts.append(reason)
        await asyncio.sleep(0)  # the other caller runs meanwhile and waits for this one
        repl.credentials.replace(Login(SERVER, "ada@example.com", 7, token="new"))
        return repl.login.token

    monkeypatch.setattr(repl, "_prompt_for_password", prompt_once)
    tokens = await asyncio.gather(
        repl._reauthenticate("token expired", stale="old"), repl._reauthenticate("", stale="old")
    )
    assert list(tokens) == ["new", "new"]
    assert prompts == ["token expired"]

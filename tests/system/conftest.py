"""Browser fixtures: headless Chromium driven by Playwright, and the servers the widget talks to."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, Protocol

import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright, expect

from server.app import create_app
from tests.support import services
from tests.support.browser import BROWSER_ARGS, DEFAULT_CHROMIUM, DESKTOP
from tests.support.live import LiveServer, ServerProcess, free_port, serve_in_process
from tests.support.settings import make_settings, server_env
from tests.support.timing import TIMEOUT

SLOW_CHUNK_DELAY = 0.05
"""Echo provider pause between 8-character chunks: a 2,000-character reply takes about 12 s."""
SEED_STORAGE = """(() => {
    for (const [key, value] of Object.entries(ENTRIES)) {
        if (sessionStorage.getItem(key) === null) sessionStorage.setItem(key, JSON.stringify(value));
    }
})()"""

# Every `expect(...)` waits up to the suite's one tunable unit, not Playwright's 5 s default.
expect.set_options(timeout=TIMEOUT * 1000)


class OpenPage(Protocol):
    def __call__(
        self, url: str, *, viewport: ViewportSize = ..., storage: dict[str, Any] | None = ...
    ) -> Awaitable[Page]:
        """A fresh browser context (its own sessionStorage, like a new tab) showing `url`."""
        ...


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("TEST_CHROMIUM", DEFAULT_CHROMIUM)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        services.unavailable("Chromium", f"no executable at {path} (install Debian's chromium or set TEST_CHROMIUM)")
    return path


@pytest.fixture(scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium_path, args=BROWSER_ARGS, timeout=TIMEOUT * 3000
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
async def widget_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """The app with the offline rules assistant, serving the demo page at `/`."""
    path = tmp_path_factory.mktemp("widget") / "widget.db"
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{path}", assistant_provider="rules")
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.fixture(scope="session")
async def slow_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """The echo assistant, slowed down: its turns last long enough to stop them."""
    path = tmp_path_factory.mktemp("widget-slow") / "slow.db"
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{path}", assistant_provider="echo", echo_chunk_delay=SLOW_CHUNK_DELAY
    )
    async with serve_in_process(create_app(settings)) as live:
        yield live


@pytest.fixture
async def server_process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """`python -m server` on a free port with a SQLite file, not started: the test starts and restarts it."""
    server = ServerProcess(
        port=free_port(),
        env=server_env(database_url=f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}", assistant_provider="rules"),
        log_path=tmp_path / "server.log",
    )
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[OpenPage]:
    """Open pages in fresh contexts; fails the test if any page threw an uncaught exception."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    async def open_(url: str, *, viewport: ViewportSize = DESKTOP, storage: dict[str, Any] | None = None) -> Page:
        context = await browser.new_context(viewport=viewport)
        context.set_default_timeout(TIMEOUT * 1000)
        contexts.append(context)
        if storage:
            # Seed sessionStorage before the widget's script runs (as a reloaded tab would have it).
            await context.add_init_script(script=SEED_STORAGE.replace("ENTRIES", json.dumps(storage)))
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        await page.goto(url)
        return page

    try:
        yield open_
    finally:
        for context in contexts:
            await context.close()
    assert not errors, f"uncaught exceptions in the page: {errors}"

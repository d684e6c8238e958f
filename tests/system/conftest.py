"""Browser fixtures: headless Chromium driven by Playwright, and the servers the widget talks to."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
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
        self,
        url: str,
        *,
        viewport: ViewportSize = ...,
        storage: dict[str, Any] | None = ...,
        watch: Callable[[Page], None] | None = ...,
        beside: Page | None = ...,
        timezone: str | None = ...,
        permissions: Sequence[str] = ...,
        init_script: str | None = ...,
    ) -> Awaitable[Page]:
        """A fresh browser context (its own sessionStorage, like a new tab) showing `url`.

        `watch` is called with the page before it loads anything (to listen for its sockets, say).
        `beside`: another tab in that page's context instead (`viewport` and `storage` are the
        context's: it starts with the same sessionStorage, as a duplicated tab does, and shares
        the other tab's Web Locks and BroadcastChannels).
        `timezone` (an IANA name) and `permissions` (say, "notifications") are the context's, and
        `init_script` runs in each of its pages before the page's own scripts.
        """
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


SHOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><main><h1>Shop</h1></main>
<script src="{backend}/widget/chat-widget.js" data-title="Shop helper"></script>
<script>window.TodoChat.open();</script>
</body></html>"""
"""A third-party page: the one script tag, and a call to `TodoChat` before the widget's modules are in."""


@dataclass
class CrossOrigin:
    host: LiveServer
    """Serves SHOP_PAGE at `/shop`, on its own origin."""
    backend: LiveServer
    """The rules assistant, with the host's origin in CORS_ORIGINS (REST, module scripts, the socket)."""


@pytest.fixture(scope="session")
async def cross_origin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CrossOrigin]:
    # Both on loopback: Chromium refuses a page on a public origin any request to loopback.
    pages = FastAPI()
    backend_url = ""

    @pages.get("/shop", response_class=HTMLResponse)
    async def shop() -> str:
        return SHOP_PAGE.format(backend=backend_url)

    async with serve_in_process(pages) as host:
        path = tmp_path_factory.mktemp("widget-cors") / "cors.db"
        settings = make_settings(
            database_url=f"sqlite+aiosqlite:///{path}", assistant_provider="rules", cors_origins=[host.base_url]
        )
        async with serve_in_process(create_app(settings)) as backend:
            backend_url = backend.base_url
            yield CrossOrigin(host=host, backend=backend)


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

    async def open_(
        url: str,
        *,
        viewport: ViewportSize = DESKTOP,
        storage: dict[str, Any] | None = None,
        watch: Callable[[Page], None] | None = None,
        beside: Page | None = None,
        timezone: str | None = None,
        permissions: Sequence[str] = (),
        init_script: str | None = None,
    ) -> Page:
        if beside is not None:
            return await show(beside.context, url, watch)
        context = await browser.new_context(viewport=viewport, timezone_id=timezone, permissions=list(permissions))
        context.set_default_timeout(TIMEOUT * 1000)
        contexts.append(context)
        if init_script:
            await context.add_init_script(script=init_script)
        if storage:
            # Seed sessionStorage before the widget's script runs (as a reloaded tab would have it).
            await context.add_init_script(script=SEED_STORAGE.replace("ENTRIES", json.dumps(storage)))
        return await show(context, url, watch)

    async def show(context: BrowserContext, url: str, watch: Callable[[Page], None] | None) -> Page:
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        if watch is not None:
            watch(page)
        await page.goto(url)
        return page

    try:
        yield open_
    finally:
        for context in contexts:
            await context.close()
    assert not errors, f"uncaught exceptions in the page: {errors}"

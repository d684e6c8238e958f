"""Redraw the chat widget's screenshots in docs/: the demo page after a few chat turns, on a desktop and a phone.

    python -m docs.screenshots [--chromium /usr/bin/chromium] [--out docs]   (from the repository root)

The app runs in this process with the offline rules assistant and a throwaway SQLite database;
Playwright drives a headless Chromium (Debian's package, or the one named by TEST_CHROMIUM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from playwright.async_api import Browser, Page, ViewportSize, async_playwright, expect

from server.app import create_app
from server.settings import Settings
from tests.support.browser import BROWSER_ARGS, DESKTOP, PHONE

DOCS = Path(__file__).resolve().parent
EMAIL = "alex@example.com"
PASSWORD = "correct horse battery"  # noqa: S105  a throwaway demo account
TURNS = [
    "Add buy groceries and add call the dentist",
    "Add a task to renew the passport",
    "Mark buy groceries as done",
]


@contextlib.asynccontextmanager
async def serve(database: Path) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port; yields its base URL."""
    settings = Settings(
        _env_file=None,  # a screenshot must not depend on a local .env
        database_url=f"sqlite+aiosqlite:///{database}",
        jwt_secret=secrets.token_urlsafe(48),
        bcrypt_rounds=4,
        assistant_provider="rules",
        log_level="warning",
    )
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server._serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during start-up")
                await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def open_widget(browser: Browser, url: str, viewport: ViewportSize, scale: int) -> Page:
    context = await browser.new_context(viewport=viewport, device_scale_factor=scale)
    page = await context.new_page()
    await page.goto(url)
    return page


async def log_in(page: Page, *, signup: bool) -> None:
    widget = page.locator("todo-chat-widget")
    if signup:
        await widget.get_by_role("button", name="Create an account").click()
    await widget.get_by_label("Email").fill(EMAIL)
    await widget.get_by_label("Password").fill(PASSWORD)
    await widget.get_by_role("button", name="Sign up" if signup else "Log in", exact=True).click()
    await expect(widget.get_by_role("status", name="Connection")).to_have_attribute("data-state", "online")


async def chat(page: Page, text: str) -> None:
    widget = page.locator("todo-chat-widget")
    replies = widget.locator(".msg.assistant:not(.streaming)")
    before = await replies.count()
    box = widget.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")
    await expect(replies).to_have_count(before + 1)


async def settle(page: Page) -> None:
    """No focus ring or half-finished animation in the picture."""
    await page.evaluate("() => document.activeElement && document.activeElement.blur()")
    await page.locator("todo-chat-widget").locator(".log").evaluate("log => log.parentElement.scrollTo(0, 1e6)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chromium", default=os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
    parser.add_argument("--out", type=Path, default=DOCS)
    args = parser.parse_args()
    expect.set_options(timeout=20_000)

    with tempfile.TemporaryDirectory() as tmp:
        async with serve(Path(tmp) / "screenshots.db") as url, async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=args.chromium, args=BROWSER_ARGS)
            try:
                desktop = await open_widget(browser, url, DESKTOP, 1)
                await log_in(desktop, signup=True)
                for text in TURNS:
                    await chat(desktop, text)
                done = desktop.locator("todo-chat-widget").get_by_role("checkbox", name=re.compile("groceries", re.I))
                await expect(done).to_be_checked()
                await settle(desktop)
                await desktop.screenshot(path=args.out / "widget-chat.png", animations="disabled")

                phone = await open_widget(browser, url, PHONE, 2)
                await log_in(phone, signup=False)
                await expect(phone.locator("todo-chat-widget").locator(".msg.user")).to_have_count(len(TURNS))
                await settle(phone)
                await phone.screenshot(path=args.out / "widget-mobile.png", animations="disabled")
            finally:
                await browser.close()
    print(f"wrote {args.out / 'widget-chat.png'} and {args.out / 'widget-mobile.png'}")  # noqa: T201


if __name__ == "__main__":
    asyncio.run(main())

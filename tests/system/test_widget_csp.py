"""The demo page and the widget under their Content-Security-Policy, in real Chromium: nothing is blocked."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.support.browser import DESKTOP
from tests.support.live import LiveServer
from tests.support.timing import TIMEOUT
from tests.support.users import signup

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
    window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


async def test_the_widget_works_under_the_pages_policy(widget_server: LiveServer, browser: Browser) -> None:
    user = await signup(widget_server.base_url)
    context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT * 1000)
    try:
        await context.add_init_script(script=RECORD_VIOLATIONS)
        page = await context.new_page()
        console = []
        page.on("console", lambda message: console.append(message.text))
        response = await page.goto(widget_server.base_url)
        assert response is not None
        assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]

        await page.locator("#open-assistant").click()  # the page's inline script, allowed by its hash
        root = page.locator("todo-chat-widget")
        await root.get_by_label("Email").fill(user.email)
        await root.get_by_label("Password").fill(user.password)
        await root.get_by_role("button", name="Log in", exact=True).click()
        await expect(root.get_by_role("status", name="Connection")).to_have_attribute("data-state", "online")
        await root.get_by_role("textbox", name="Message").fill("Add a task to water the plants")
        await root.get_by_role("textbox", name="Message").press("Enter")
        await expect(root.locator(".task")).to_have_count(1)  # REST, the socket and its events all got through
        # Styled: the constructed stylesheet applied inside the Shadow DOM.
        launcher_position = await root.locator(".launcher").evaluate("el => getComputedStyle(el).position")
        assert launcher_position == "fixed"

        assert await page.evaluate("window.__cspViolations") == []
        assert not [line for line in console if "Content Security Policy" in line]
    finally:
        await context.close()

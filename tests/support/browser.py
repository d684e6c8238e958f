"""How tests and the screenshot script start Debian's Chromium (no browser download works offline)."""

from __future__ import annotations

from playwright.async_api import ViewportSize

DEFAULT_CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling Google's hosts, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}

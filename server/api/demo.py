"""The browser chat widget (`/widget/chat-widget.js`) and its demo page (`/`), served from `client_demo/widget`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import client_demo
from server.api.headers import page_csp

WIDGET_DIR = Path(client_demo.__file__).parent / "widget"


def content_security_policy() -> str | None:
    """The CSP for the demo page and the widget, from the page as it is on disk (its inline blocks by hash)."""
    page = WIDGET_DIR / "index.html"
    return page_csp(page.read_text(encoding="utf-8")) if page.is_file() else None


def mount(app: FastAPI) -> None:
    if not WIDGET_DIR.is_dir():
        return
    app.mount("/widget", StaticFiles(directory=WIDGET_DIR), name="widget")

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(WIDGET_DIR / "index.html", headers={"Cache-Control": "no-cache"})

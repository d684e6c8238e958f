"""The browser chat widget (`/widget/chat-widget.js`) and its demo page (`/`), served from `client_demo/widget`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

import client_demo

WIDGET_DIR = Path(client_demo.__file__).parent / "widget"


def mount(app: FastAPI) -> None:
    if not WIDGET_DIR.is_dir():
        return
    app.mount("/widget", StaticFiles(directory=WIDGET_DIR), name="widget")

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(WIDGET_DIR / "index.html", headers={"Cache-Control": "no-cache"})

"""The demo page's CSP: its inline blocks by hash, nothing else inline; the uvicorn log filter."""

from __future__ import annotations

import base64
import hashlib
import logging

from server.api.demo import WIDGET_DIR, content_security_policy
from server.api.headers import inline_hashes, page_csp
from server.logs import configure_logging


def sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_inline_scripts_and_styles_are_hashed_exactly_and_external_scripts_are_not() -> None:
    html = '<style>\n a { b: c }\n</style><script src="/x.js"></script><SCRIPT type="module">go()</SCRIPT>'
    assert inline_hashes(html) == {"script": [sha("go()")], "style": [sha("\n a { b: c }\n")]}


def test_page_policy_allows_only_this_origin_and_the_pages_own_blocks() -> None:
    policy = dict(part.split(" ", 1) for part in page_csp("<script>x()</script>").split("; "))
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == f"'self' {sha('x()')}"
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in page_csp("<script>x()</script>")


def test_the_served_demo_page_is_covered() -> None:
    html = (WIDGET_DIR / "index.html").read_text(encoding="utf-8")
    policy = content_security_policy()
    assert policy is not None
    for digest in [*inline_hashes(html)["script"], *inline_hashes(html)["style"]]:
        assert digest in policy


def test_uvicorn_socket_lines_lose_their_query_string() -> None:
    configure_logging("warning")
    logger = logging.getLogger("uvicorn.error")
    record = logger.makeRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("1.2.3.4:5", "/api/ws?token=s3cret"),
        None,
    )
    for log_filter in logger.filters:
        assert not isinstance(log_filter, logging.Filter) or log_filter.filter(record)
    assert "s3cret" not in record.getMessage() and "/api/ws" in record.getMessage()

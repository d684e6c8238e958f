"""The browser widget in real headless Chromium, against a real server: what a person sees and does."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import FloatRect, Locator, Page, ViewportSize, WebSocket, expect

from tests.support import node
from tests.support.browser import DESKTOP, PHONE
from tests.support.live import LiveServer, ServerProcess
from tests.support.timing import TIMEOUT, wait_until
from tests.support.tokens import access_token
from tests.support.users import AppUser, login
from tests.system.conftest import CrossOrigin, OpenPage

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
BERLIN = "Europe/Berlin"
RECORD_NOTIFICATIONS = """(() => {
    // Every browser notification the page makes, as (title, options): the real one is made too.
    window.__notifications = [];
    const Real = window.Notification;
    if (typeof Real !== "function") return;
    window.Notification = class extends Real {
        constructor(title, options) {
            super(title, options);
            window.__notifications.push({ title, ...options });
        }
    };
})()"""
UNASKED_NOTIFICATIONS = """(() => {
    // Permission "default" until requestPermission, which records whether a user gesture is under way.
    window.__asked = [];
    let permission = "default";
    Object.defineProperty(Notification, "permission", { get: () => permission, configurable: true });
    Notification.requestPermission = async () => {
        window.__asked.push(navigator.userActivation.isActive);
        permission = "granted";
        return permission;
    };
})()"""
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


class Widget:
    """The widget on one page, found through its accessible roles and names."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.root = page.locator("todo-chat-widget")
        self.status = self.root.get_by_role("status", name="Connection")
        self.input = self.root.get_by_role("textbox", name="Message")
        self.user_messages = self.root.locator(".msg.user .bubble")
        self.replies = self.root.locator(".msg.assistant:not(.streaming)")
        self.tools = self.root.locator(".tool .tool-text")
        self.stop = self.root.get_by_role("button", name="Stop")
        self.tasks = self.root.locator(".task")

    async def login(self, user: AppUser) -> None:
        await self.root.get_by_label("Email").fill(user.email)
        await self.root.get_by_label("Password").fill(user.password)
        await self.root.get_by_role("button", name="Log in", exact=True).click()
        await self.online()

    async def online(self, *, timeout: float = TIMEOUT) -> None:
        await expect(self.status).to_have_attribute("data-state", "online", timeout=timeout * 1000)

    async def send(self, text: str) -> None:
        await self.input.fill(text)
        await self.input.press("Enter")

    async def turn(self, text: str) -> Locator:
        """Send `text` and wait for the reply to it; returns the reply's bubble."""
        before = await self.replies.count()
        await self.send(text)
        await expect(self.replies).to_have_count(before + 1)
        await expect(self.stop).to_be_hidden()
        return self.replies.nth(before).locator(".bubble")

    def task(self, title: str | re.Pattern[str]) -> Locator:
        return self.root.get_by_role("checkbox", name=title)

    async def focused(self) -> str | None:
        """The id (or tag) of the focused element, looking inside shadow roots."""
        result: str | None = await self.page.evaluate(
            """() => {
                let el = document.activeElement;
                while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
                return el && el !== document.body ? (el.id || el.tagName.toLowerCase()) : null;
            }"""
        )
        return result


async def signup(base_url: str) -> AppUser:
    email = f"user-{secrets.token_hex(6)}@example.com"
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        response = await client.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return AppUser.from_auth(response.json(), password=PASSWORD)


async def rest(base_url: str, user: AppUser, method: str, path: str, **kwargs: Any) -> Any:
    async with httpx.AsyncClient(base_url=base_url, headers=user.headers, timeout=TIMEOUT) as client:
        response = await client.request(method, user.url(path), **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


async def all_messages(base_url: str, user: AppUser) -> list[dict[str, Any]]:
    conversations = await rest(base_url, user, "GET", "/conversations")
    messages: list[dict[str, Any]] = []
    for conversation in conversations["data"]:
        page = await rest(base_url, user, "GET", f"/conversations/{conversation['id']}/messages", params={"limit": 200})
        messages.extend(page["data"])
    return messages


def storage_key(server: LiveServer | ServerProcess, name: str) -> str:
    return f"todochat:{server.base_url}:{name}"


def stored_session(user: AppUser, *, token: str | None = None, seconds_left: float = 900) -> dict[str, Any]:
    """The `session` the widget keeps in sessionStorage for `user`'s tokens (`token`: another of the session's)."""
    return {
        "token": token or user.token,
        "refreshToken": user.refresh_token,
        "expiresAt": (time.time() + seconds_left) * 1000,
        "sessionId": user.session_id,
        "userId": user.id,
        "email": user.email,
    }


async def read_session(page: Page, server: LiveServer) -> dict[str, Any] | None:
    found: dict[str, Any] | None = await page.evaluate(
        f"JSON.parse(sessionStorage.getItem({storage_key(server, 'session')!r}))"
    )
    return found


async def refused(base_url: str, token: str) -> bool:
    """The server refuses `token` (expired, or its session ended)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=TIMEOUT) as client:
        response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code == 401


@dataclass
class SocketLog:
    socket: WebSocket
    sent: list[dict[str, Any]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)

    def got(self, frame_type: str) -> bool:
        return any(frame["type"] == frame_type for frame in self.received)


@dataclass
class Traffic:
    """What pages did on the wire: every socket with its frames, and the status of every refresh."""

    sockets: list[SocketLog] = field(default_factory=list)
    refreshes: list[int] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("websocket", self._socket)
        page.on("response", lambda r: self.refreshes.append(r.status) if r.url.endswith("/api/auth/refresh") else None)

    def _socket(self, socket: WebSocket) -> None:
        log = SocketLog(socket)
        self.sockets.append(log)
        socket.on("framesent", lambda payload: log.sent.append(json.loads(payload)))
        socket.on("framereceived", lambda payload: log.received.append(json.loads(payload)))


# --- 1. accounts -------------------------------------------------------------------------------


async def test_signup_through_the_form_then_reload_and_log_out(widget_server: LiveServer, open_page: OpenPage) -> None:
    page = await open_page(widget_server.base_url)
    widget = Widget(page)
    email = f"new-{secrets.token_hex(6)}@example.com"

    await widget.root.get_by_role("button", name="Create an account").click()
    await widget.root.get_by_label("Email").fill(email)
    await widget.root.get_by_label("Password").fill("short")
    await widget.root.get_by_role("button", name="Sign up").click()
    await expect(widget.root.get_by_role("alert")).to_contain_text("at least 8 characters")

    await widget.root.get_by_label("Password").fill(PASSWORD)
    await widget.root.get_by_role("button", name="Sign up").click()
    await widget.online()
    await expect(widget.root.get_by_text(email)).to_be_visible()
    assert await widget.focused() == "tc-input", "focus moves to the message box after signing up"

    # The account is real: the REST API accepts the same credentials.
    async with httpx.AsyncClient(base_url=widget_server.base_url, timeout=TIMEOUT) as client:
        login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text

    await page.reload()  # the token lives in sessionStorage: still logged in
    await widget.online()

    stored = await read_session(page, widget_server)
    assert stored is not None
    await widget.root.get_by_role("button", name="Log out").click()
    await expect(widget.root.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    await expect(widget.status).to_be_hidden()  # no session, no connection to speak of
    await expect(widget.root.locator(".conn")).to_have_attribute("data-state", "offline")
    assert await read_session(page, widget_server) is None
    # The session ended on the server too: its tokens are refused (a copy is worth nothing).
    await wait_until(lambda: refused(widget_server.base_url, stored["token"]), step=0.1)
    await page.reload()
    await expect(widget.root.get_by_role("button", name="Log in", exact=True)).to_be_visible()


async def test_a_wrong_password_is_reported(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    widget = Widget(await open_page(widget_server.base_url))
    await widget.root.get_by_label("Email").fill(user.email)
    await widget.root.get_by_label("Password").fill("not the password")
    await widget.root.get_by_role("button", name="Log in", exact=True).click()
    await expect(widget.root.get_by_role("alert")).to_have_text("Incorrect email or password")


# --- 2, 3. chat turns, live tasks, two tabs ---------------------------------------------------


async def test_a_chat_turn_adds_a_task_and_the_panel_updates_live(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    widget = Widget(await open_page(widget_server.base_url))
    await widget.login(user)
    await expect(widget.root.get_by_text("No tasks yet")).to_be_visible()

    reply = await widget.turn("Add a task to buy groceries")

    await expect(reply).to_contain_text(re.compile("groceries", re.I))
    await expect(widget.tools).to_have_text([re.compile(r"^Added task: Buy groceries$", re.I)])
    checkbox = widget.task(re.compile("buy groceries", re.I))
    await expect(checkbox).not_to_be_checked()
    await expect(widget.user_messages).to_have_text(["Add a task to buy groceries"])
    conversation = widget.root.locator(".conv[aria-current=true]")
    await expect(conversation).to_contain_text("Add a task to buy groceries")

    # Ticking the box completes the task through REST.
    async with widget.page.expect_response(lambda r: r.request.method == "PATCH") as patched:
        await checkbox.click()
    assert (await patched.value).ok
    await expect(checkbox).to_be_checked()
    tasks = await rest(widget_server.base_url, user, "GET", "/tasks")
    assert [(t["title"].lower(), t["completed"]) for t in tasks["data"]] == [("buy groceries", True)]

    # A change made elsewhere (REST here) reaches the panel as a task.* event.
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Renew passport"})
    await expect(widget.task("Renew passport")).not_to_be_checked()


async def test_a_second_tab_sees_the_turn_live(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    first = Widget(await open_page(widget_server.base_url))
    await first.login(user)
    await first.turn("Add a task to call mom")

    second = Widget(await open_page(widget_server.base_url))  # another context: its own sessionStorage
    await second.login(user)
    await expect(second.user_messages).to_have_text(["Add a task to call mom"])  # the newest conversation

    await first.turn("Add a task to water the plants")

    # The second tab renders the first tab's message from the `message` event, and the reply, live.
    await expect(second.user_messages).to_have_text(["Add a task to call mom", "Add a task to water the plants"])
    await expect(second.replies).to_have_count(2)
    await expect(second.replies.last).to_contain_text(re.compile("water the plants", re.I))
    await expect(second.task(re.compile("water the plants", re.I))).to_be_visible()
    # The sending tab shows its message once: the optimistic bubble became the acked one.
    await expect(first.user_messages).to_have_text(["Add a task to call mom", "Add a task to water the plants"])

    # And back: a checkbox ticked in the second tab updates the first.
    await second.task(re.compile("call mom", re.I)).click()
    await expect(first.task(re.compile("call mom", re.I))).to_be_checked()


async def test_which_one_offers_the_matching_tasks_as_choices(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    team = await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Team meeting"})
    notes = await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Meeting notes"})
    widget = Widget(await open_page(widget_server.base_url))
    await widget.login(user)

    reply = await widget.turn("complete meeting")
    await expect(reply).to_contain_text("Which one")
    choices = widget.root.get_by_role("group", name="Which task?").get_by_role("button")
    await expect(choices).to_have_text([f"#{team['id']} Team meeting", f"#{notes['id']} Meeting notes"])

    await choices.nth(1).click()
    await expect(choices).to_have_count(0)
    await expect(widget.user_messages.last).to_have_text(f"task {notes['id']}")
    await expect(widget.task("Meeting notes")).to_be_checked()
    await expect(widget.tools.last).to_have_text("Completed task: Meeting notes")
    await expect(widget.task("Team meeting")).not_to_be_checked()


# --- 4. reconnecting -------------------------------------------------------------------------


async def test_reconnects_after_a_restart_and_sends_the_queued_message_once(
    server_process: ServerProcess, open_page: OpenPage
) -> None:
    await server_process.start()
    user = await signup(server_process.base_url)
    widget = Widget(await open_page(server_process.base_url))
    await widget.login(user)
    await widget.turn("Add a task to water the plants")

    await server_process.stop()  # SIGTERM: a graceful shutdown closes the socket with 1012
    await expect(widget.status).to_have_attribute("data-state", "reconnecting")
    await expect(widget.status).to_have_text("Reconnecting…")

    text = "Add a task to pay the rent"
    await widget.send(text)
    queued = widget.root.locator(".msg.user.pending")
    await expect(queued).to_contain_text("Queued")
    assert await widget.focused() == "tc-input"
    outbox_key = storage_key(server_process, "outbox")
    outbox = await widget.page.evaluate(f"JSON.parse(sessionStorage.getItem({outbox_key!r}))")
    assert [entry["message"] for entry in outbox] == [text]  # survives a reload too

    await server_process.start()  # same port, same SQLite file
    await widget.online(timeout=TIMEOUT * 3)
    await expect(widget.task(re.compile("pay the rent", re.I))).to_be_visible()
    await expect(queued).to_have_count(0)
    await expect(widget.user_messages.filter(has_text=text)).to_have_count(1)
    await expect(widget.replies).to_have_count(2)
    assert await widget.page.evaluate(f"JSON.parse(sessionStorage.getItem({outbox_key!r}))") == []

    messages = await all_messages(server_process.base_url, user)
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Add a task to water the plants", text]
    tasks = await rest(server_process.base_url, user, "GET", "/tasks")
    assert sorted(t["title"].lower() for t in tasks["data"]) == ["pay the rent", "water the plants"]


async def test_resyncs_from_rest_when_its_seq_is_ahead_of_the_server(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    """A stored `after_seq` the server never issued (say, a reset database) gets `resync_required`."""
    user = await signup(widget_server.base_url)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Book flights"})
    storage = {
        storage_key(widget_server, "session"): stored_session(user),
        storage_key(widget_server, "seq"): {"userId": user.id, "seq": 10_000},
    }
    page = await open_page(widget_server.base_url, storage=storage)
    widget = Widget(page)
    await widget.online()
    await expect(widget.task("Book flights")).to_be_visible()

    # The widget took the server's seq: new events are not mistaken for duplicates.
    await widget.turn("Add a task to pack the bags")
    await expect(widget.task(re.compile("pack the bags", re.I))).to_be_visible()
    stored = await page.evaluate(f"JSON.parse(sessionStorage.getItem({storage_key(widget_server, 'seq')!r}))")
    assert stored["userId"] == user.id
    assert stored["seq"] < 10_000


async def test_a_rejected_token_returns_to_the_login_form(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    session = {"token": "not-a-token", "userId": user.id, "email": user.email}
    page = await open_page(widget_server.base_url, storage={storage_key(widget_server, "session"): session})
    widget = Widget(page)
    await expect(widget.root.get_by_role("alert")).to_contain_text("Please log in again")
    await widget.login(user)


# --- sessions: refreshing, ended elsewhere, tabs sharing one ----------------------------------


async def test_a_token_about_to_expire_is_refreshed_and_the_socket_outlives_it(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    short = access_token(user.id, user.session_id, seconds_left=5)
    traffic = Traffic()
    storage = {storage_key(widget_server, "session"): stored_session(user, token=short, seconds_left=5)}
    page = await open_page(widget_server.base_url, storage=storage, watch=traffic.watch)
    widget = Widget(page)
    await widget.online()

    # Refreshed at once (under 10 s left for REST, under a fifth of its life for the socket) and
    # handed to the open socket.
    await wait_until(lambda: bool(traffic.sockets) and traffic.sockets[0].got("auth.refreshed"))
    stored = await read_session(page, widget_server)
    assert stored is not None
    assert stored["token"] != short
    assert stored["refreshToken"] != user.refresh_token
    assert (stored["sessionId"], stored["userId"], stored["email"]) == (user.session_id, user.id, user.email)
    assert stored["expiresAt"] / 1000 > time.time() + 30  # the server's minutes, not the seeded seconds
    assert {"type": "auth.refresh", "token": stored["token"]} in traffic.sockets[0].sent

    # Past the seeded token's expiry (the server refuses it now), the first socket is still the one.
    await wait_until(lambda: refused(widget_server.base_url, short), timeout=TIMEOUT * 2, step=0.2)
    await widget.turn("Add a task to renew the passport")
    await expect(widget.task(re.compile("renew the passport", re.I))).to_be_visible()
    assert len(traffic.sockets) == 1
    assert not traffic.sockets[0].socket.is_closed()
    assert traffic.refreshes == [200]
    await expect(widget.root.get_by_role("button", name="Log in", exact=True)).to_be_hidden()


async def test_a_token_refused_as_expired_is_refreshed_and_the_socket_resumes_at_once(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    """A tab that believes its token good (a laptop woken from sleep): the 4401 is answered by a refresh."""
    user = await signup(widget_server.base_url)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Book flights"})
    expired = access_token(user.id, user.session_id, seconds_left=-5)
    traffic = Traffic()
    storage = {
        storage_key(widget_server, "session"): stored_session(user, token=expired, seconds_left=600),
        storage_key(widget_server, "seq"): {"userId": user.id, "seq": 1},
    }
    page = await open_page(widget_server.base_url, storage=storage, watch=traffic.watch)
    widget = Widget(page)
    await widget.online()
    await expect(widget.task("Book flights")).to_be_visible()

    stored = await read_session(page, widget_server)
    assert stored is not None
    assert [log.sent[0] for log in traffic.sockets] == [
        {"type": "auth", "token": expired, "after_seq": 1},
        {"type": "auth", "token": stored["token"], "after_seq": 1},  # the resume position kept
    ]
    assert not traffic.sockets[0].got("hello")
    assert traffic.refreshes == [200]
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Pack the bags"})
    await expect(widget.task("Pack the bags")).to_be_visible()  # live on the new socket


@pytest.mark.parametrize("where", ["its own token", "another device"])
async def test_a_session_ended_elsewhere_returns_to_the_login_form(
    widget_server: LiveServer, open_page: OpenPage, where: str
) -> None:
    user = await signup(widget_server.base_url)
    storage = {storage_key(widget_server, "session"): stored_session(user)}
    page = await open_page(widget_server.base_url, storage=storage)
    widget = Widget(page)
    await widget.online()

    if where == "its own token":  # say, a script holding a copy, or the same tab duplicated and logged out
        async with httpx.AsyncClient(base_url=widget_server.base_url, headers=user.headers) as client:
            response = await client.post("/api/auth/logout")
    else:  # the session list of another device
        phone = await login(widget_server.base_url, user, device="phone")
        async with httpx.AsyncClient(base_url=widget_server.base_url, headers=phone.headers) as client:
            response = await client.delete(f"/api/auth/sessions/{user.session_id}")
    assert response.status_code == 204, response.text

    # The server closes the socket (4401 session ended); the refresh that follows is refused.
    await expect(widget.root.get_by_role("alert")).to_have_text("Your session ended. Please log in again.")
    await expect(widget.root.get_by_label("Email")).to_be_visible()
    assert await read_session(page, widget_server) is None
    await widget.login(user)  # and logging in again works


async def test_two_tabs_sharing_one_session_refresh_it_once_and_keep_it(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    """A duplicated tab holds the same refresh token; presenting it twice too late would end the session."""
    user = await signup(widget_server.base_url)
    short = access_token(user.id, user.session_id, seconds_left=5)
    traffic = Traffic()
    storage = {storage_key(widget_server, "session"): stored_session(user, token=short, seconds_left=5)}
    first = await open_page(widget_server.base_url, storage=storage, watch=traffic.watch)
    second = await open_page(widget_server.base_url, beside=first, watch=traffic.watch)
    tabs = [Widget(first), Widget(second)]
    for tab in tabs:
        await tab.online()

    await wait_until(lambda: refused(widget_server.base_url, short), timeout=TIMEOUT * 2, step=0.2)
    one, other = [await read_session(tab, widget_server) for tab in (first, second)]
    assert one is not None and other is not None
    assert one == other  # one refresh, its tokens adopted by the other tab
    assert one["refreshToken"] != user.refresh_token
    assert traffic.refreshes.count(200) == 1, traffic.refreshes
    # Each tab's socket carries the new token: it authenticated with it, or took it by auth.refresh.
    assert len(traffic.sockets) == 2
    await wait_until(
        lambda: all(log.sent[0]["token"] == one["token"] or log.got("auth.refreshed") for log in traffic.sockets)
    )

    # The session lives on: its new tokens work, and both tabs still chat on their first socket.
    async with httpx.AsyncClient(
        base_url=widget_server.base_url, headers={"Authorization": f"Bearer {one['token']}"}
    ) as client:
        sessions = (await client.get("/api/auth/sessions")).json()
    assert [s["id"] for s in sessions["data"]] == [user.session_id]
    await tabs[0].turn("Add a task to call the plumber")
    await expect(tabs[1].task(re.compile("call the plumber", re.I))).to_be_visible()
    assert [log.socket.is_closed() for log in traffic.sockets] == [False, False]


async def test_the_session_list_ends_another_device_and_logs_out_everywhere(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    phone = await login(widget_server.base_url, user, device="Phone app")
    widget = Widget(await open_page(widget_server.base_url))
    await widget.login(user)

    toggle = widget.root.get_by_role("button", name="Signed-in devices")
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    devices = widget.root.get_by_role("list", name="Signed-in devices").get_by_role("listitem")
    await expect(devices).to_have_count(3)  # signup, the phone, this browser
    await expect(devices.filter(has_text="This device")).to_have_count(1)
    await expect(devices.filter(has_text="This device").get_by_role("button")).to_have_count(0)  # that is Log out

    await widget.root.get_by_role("button", name="End the session on Phone app").click()
    await expect(devices).to_have_count(2)
    assert await refused(widget_server.base_url, phone.token)
    await widget.online()  # this tab carries on

    await widget.root.get_by_role("button", name="Log out everywhere").click()
    await expect(widget.root.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    await expect(widget.root.get_by_role("alert")).to_have_text("")  # asked for, not "your session ended"
    assert await refused(widget_server.base_url, user.token)  # the signup's session too
    assert await read_session(widget.page, widget_server) is None


async def test_the_socket_authenticates_by_first_frame_and_pings_every_25_seconds(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    page = await open_page(widget_server.base_url)
    await page.clock.install()  # the widget's timers now follow the test's clock
    sockets: list[WebSocket] = []
    sent: list[dict[str, Any]] = []
    received: list[dict[str, Any]] = []

    def watch(socket: WebSocket) -> None:
        sockets.append(socket)
        socket.on("framesent", lambda payload: sent.append(json.loads(payload)))
        socket.on("framereceived", lambda payload: received.append(json.loads(payload)))

    page.on("websocket", watch)
    widget = Widget(page)
    await widget.login(user)

    assert [socket.url for socket in sockets] == [widget_server.ws_url]  # no token in the URL
    assert sent[0]["type"] == "auth"
    assert sorted(sent[0]) == ["token", "type"]  # a fresh login: no after_seq to resume from
    assert received[0]["type"] == "hello"
    assert received[0]["user_id"] == user.id

    await page.clock.run_for(24_000)
    assert {"type": "ping"} not in sent
    await page.clock.run_for(1_000)
    await wait_until(lambda: received[-1]["type"] == "pong")
    assert sent.count({"type": "ping"}) == 1
    await widget.online()


async def test_a_page_on_another_origin_embeds_it_with_one_script_tag(
    cross_origin: CrossOrigin, open_page: OpenPage
) -> None:
    """The loader finds its server and its modules from its own tag; `TodoChat` works before they are in."""
    page = await open_page(f"{cross_origin.host.base_url}/shop")
    widget = Widget(page)
    await expect(widget.root.get_by_role("heading", name="Shop helper")).to_be_visible()  # opened by the page
    await expect(widget.root.get_by_role("button", name="Open the Shop helper")).to_be_hidden()

    user = await signup(cross_origin.backend.base_url)
    await widget.login(user)
    reply = await widget.turn("Add a task to buy stamps")
    await expect(reply).to_contain_text(re.compile("stamps", re.I))
    await expect(widget.task(re.compile("buy stamps", re.I))).to_be_visible()
    key = storage_key(cross_origin.backend, "session")
    assert await page.evaluate(f"JSON.parse(sessionStorage.getItem({key!r})).userId") == str(
        user.id
    )  # the string id signup returns


# --- 5. untrusted text -------------------------------------------------------------------------


async def test_text_from_the_server_is_rendered_as_text(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": XSS})
    page = await open_page(widget_server.base_url)
    widget = Widget(page)
    await widget.login(user)

    await expect(widget.root.locator(".task-title")).to_have_text([XSS])
    await widget.turn(f"Add a task to {XSS}")
    await expect(widget.user_messages).to_have_text([f"Add a task to {XSS}"])
    await expect(widget.root.locator(".conv-title")).to_contain_text(["<script>"])

    counts = await page.evaluate(
        """() => {
            const root = document.querySelector("todo-chat-widget").shadowRoot;
            return [root.querySelectorAll("script, img").length, document.querySelectorAll("img").length];
        }"""
    )
    assert counts == [0, 0]
    assert await page.evaluate("window.__xss") is None


async def test_the_host_page_styles_cannot_reach_the_widget(widget_server: LiveServer, open_page: OpenPage) -> None:
    page = await open_page(widget_server.base_url)
    widget = Widget(page)
    email = widget.root.get_by_label("Email")
    before = await widget.root.locator(".panel").bounding_box()

    # A constructed sheet: the demo page's CSP (rightly) blocks an injected <style> element.
    await page.evaluate(
        """css => { const sheet = new CSSStyleSheet(); sheet.replaceSync(css);
                    document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet]; }""",
        """
        html { font-size: 5px !important; }
        * { font: italic 40px serif !important; color: red !important; letter-spacing: 9px !important;
            box-sizing: content-box !important; }
        button, input, label, section, div { display: none !important; }
        """,
    )

    await expect(email).to_be_visible()
    await expect(widget.root.get_by_role("button", name="Log in", exact=True)).to_be_visible()
    style = await email.evaluate(
        "el => { const s = getComputedStyle(el); return [s.fontSize, s.fontStyle, s.color, s.letterSpacing]; }"
    )
    assert style == ["14px", "normal", "rgb(17, 24, 39)", "normal"]
    assert await widget.root.locator(".panel").bounding_box() == before


# --- 6. stopping a turn ------------------------------------------------------------------------


async def test_the_stop_button_cancels_a_long_turn(slow_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(slow_server.base_url)
    widget = Widget(await open_page(slow_server.base_url))
    await widget.login(user)

    long_message = "lorem ipsum " * 170  # echoed back 8 characters at a time: a reply of about 12 s
    await widget.send(long_message)
    streaming = widget.root.locator(".msg.assistant.streaming .bubble")
    await expect(streaming).to_contain_text("Echo: lorem")  # the reply is streaming in
    await widget.stop.click()

    await expect(widget.replies).to_have_count(1)
    await expect(widget.replies.locator(".meta")).to_have_text("Stopped")
    await expect(widget.stop).to_be_hidden()
    shown = await widget.replies.locator(".bubble").text_content()
    assert shown and shown.startswith("Echo: lorem")

    messages = await all_messages(slow_server.base_url, user)
    reply = next(m for m in messages if m["role"] == "assistant")
    assert reply["status"] == "cancelled"
    assert 0 < len(reply["content"]) < len("Echo: " + long_message)
    assert reply["content"] == shown


# --- 7. keyboard only ------------------------------------------------------------------------


async def test_keyboard_only(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    page = await open_page(widget_server.base_url)
    widget = Widget(page)

    async def tab_to(target: str, *, limit: int = 40) -> None:
        for _ in range(limit):
            await page.keyboard.press("Tab")
            if await widget.focused() == target:
                return
        pytest.fail(f"Tab never reached #{target}")

    await tab_to("tc-email")
    await page.keyboard.type(user.email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(user.password)
    await page.keyboard.press("Enter")
    await widget.online()
    assert await widget.focused() == "tc-input"

    # From the top of the page, Tab reaches the message box.
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    await tab_to("tc-input")
    await page.keyboard.type("Add a task to buy milk")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("and bread")
    await expect(widget.user_messages).to_have_count(0)  # Shift+Enter is a new line, not a send
    await page.keyboard.press("Enter")

    await expect(widget.user_messages).to_have_count(1)
    assert await widget.user_messages.text_content() == "Add a task to buy milk\nand bread"
    await expect(widget.input).to_have_value("")
    assert await widget.focused() == "tc-input"
    await expect(widget.replies).to_have_count(1)


# --- responsive layout -----------------------------------------------------------------------


async def test_the_panel_fills_a_phone_screen(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Walk the dog"})
    widget = Widget(await open_page(widget_server.base_url, viewport=PHONE))
    await widget.login(user)

    box = await widget.root.locator(".panel").bounding_box()
    assert box is not None
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, PHONE["width"], PHONE["height"])
    task = widget.task("Walk the dog")
    await expect(task).to_be_hidden()  # conversations and tasks sit in a drawer

    menu = widget.root.get_by_role("button", name="Conversations and tasks")
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(task).to_be_visible()
    await widget.page.keyboard.press("Escape")
    await expect(task).to_be_hidden()

    await widget.root.get_by_role("button", name="Minimize the chat").click()
    launcher = widget.root.get_by_role("button", name="Open the Todo assistant")
    await expect(launcher).to_be_focused()
    await launcher.click()
    await expect(widget.input).to_be_focused()


async def test_the_headline_stays_beside_the_open_panel_at_1200_px(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    """The demo page keeps its text in a column the open panel does not cover."""
    page = await open_page(widget_server.base_url, viewport={"width": 1200, "height": 800})
    widget = Widget(page)
    panel = widget.root.locator(".panel")
    await expect(panel).to_be_visible()

    panel_box = await panel.bounding_box()
    assert panel_box is not None
    for selector in ("h1", ".lead"):
        box = await page.locator(selector).bounding_box()
        assert box is not None
        assert box["width"] >= 300, f"{selector} squeezed to {box['width']} px"
        assert not overlaps(box, panel_box), f"the open panel covers {selector}: {box} vs {panel_box}"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


async def test_the_page_fits_a_phone_screen_beside_the_launcher(widget_server: LiveServer, open_page: OpenPage) -> None:
    page = await open_page(widget_server.base_url, viewport=PHONE)
    widget = Widget(page)
    await widget.root.get_by_role("button", name="Minimize the chat").click()
    launcher = await widget.root.get_by_role("button", name="Open the Todo assistant").bounding_box()
    assert launcher is not None
    for selector in ("h1", ".lead"):
        box = await page.locator(selector).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]
        assert not overlaps(box, launcher), f"the launcher covers {selector}"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def overlaps(a: FloatRect, b: FloatRect) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


# --- tasks that know when: due times, priority, tags, filters, reminders -----------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def account_zone(base_url: str, user: AppUser) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers=user.headers, timeout=TIMEOUT) as client:
        response = await client.get("/api/auth/me")
    response.raise_for_status()
    zone: str = response.json()["timezone"]
    return zone


def reminder_toasts(widget: Widget) -> Locator:
    return widget.root.get_by_role("region", name="Reminders").get_by_role("alert")


async def test_tasks_show_when_they_are_due_in_the_users_zone_with_priority_tags_and_repeats(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    now = datetime.now(UTC)
    tomorrow_five = (now.astimezone(ZoneInfo(BERLIN)) + timedelta(days=1)).replace(
        hour=17, minute=0, second=0, microsecond=0
    )
    tasks: list[dict[str, Any]] = [
        {
            "title": "Pay the rent",
            "due_at": iso(now - timedelta(days=3, hours=1)),
            "priority": "high",
            "tags": [" Home"],
        },
        {"title": "Call the dentist", "due_at": iso(tomorrow_five), "priority": "low", "tags": ["health", "phone"]},
        {"title": "Water the plants", "due_at": iso(now + timedelta(hours=2, minutes=5)), "recurrence": "FREQ=WEEKLY"},
        {"title": "Read a book"},
    ]
    for body in tasks:
        await rest(widget_server.base_url, user, "POST", "/tasks", json=body)
    assert await account_zone(widget_server.base_url, user) == "UTC"

    page = await open_page(widget_server.base_url, timezone=BERLIN)
    widget = Widget(page)
    await widget.login(user)

    # The account was still on the default zone: it takes the browser's.
    await wait_until(lambda: _zone_is(widget_server.base_url, user, BERLIN), step=0.1)
    items = {t["title"]: widget.tasks.filter(has=page.get_by_role("checkbox", name=t["title"])) for t in tasks}
    rent, dentist, plants, book = items.values()
    await expect(rent.locator(".task-meta")).to_have_text(re.compile(r"^⚠ Overdue by 3 days\s*↑ High\s*#home$"))
    await expect(rent).to_have_class(re.compile(r"\boverdue\b"))
    await expect(widget.task("Pay the rent")).to_have_accessible_name(re.compile("Overdue by 3 days"))
    dentist_meta = re.compile(r"^due tomorrow 17:00\s*↓ Low\s*#health\s*#phone$")
    await expect(dentist.locator(".task-meta")).to_have_text(dentist_meta)
    await expect(dentist.locator("time")).to_have_attribute("title", re.compile(r"17:00 \(Europe/Berlin\)$"))
    await expect(dentist).not_to_have_class(re.compile(r"\boverdue\b"))
    await expect(plants.locator(".task-meta")).to_have_text(re.compile(r"^due in 2 h\s*↻ repeats weekly$"))
    await expect(book.locator(".task-meta")).to_be_hidden()  # normal priority, no due time: nothing to say

    # Completed, it is no longer overdue.
    await widget.task("Pay the rent").click()
    await expect(rent).not_to_have_class(re.compile(r"\boverdue\b"))
    await expect(rent.locator("time")).to_have_text(re.compile(r"^was due "))


async def _zone_is(base_url: str, user: AppUser, zone: str) -> bool:
    return await account_zone(base_url, user) == zone


async def test_a_zone_set_on_purpose_is_kept_and_used(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    async with httpx.AsyncClient(base_url=widget_server.base_url, headers=user.headers, timeout=TIMEOUT) as client:
        (await client.patch("/api/auth/me", json={"timezone": "Asia/Tokyo"})).raise_for_status()
    tokyo_nine = (datetime.now(ZoneInfo("Asia/Tokyo")) + timedelta(days=1)).replace(hour=9, minute=0, second=0)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Standup", "due_at": iso(tokyo_nine)})
    storage = {storage_key(widget_server, "session"): stored_session(user)}
    widget = Widget(await open_page(widget_server.base_url, timezone=BERLIN, storage=storage))
    await widget.online()
    # Shown in the account's zone (09:00 Tokyo is 01:00 in Berlin), and the zone is left as it was.
    await expect(widget.tasks.locator("time")).to_have_text("due tomorrow 09:00")
    assert await account_zone(widget_server.base_url, user) == "Asia/Tokyo"


async def test_filters_and_sorting_narrow_the_list_and_live_events_keep_it_right(
    widget_server: LiveServer, open_page: OpenPage
) -> None:
    user = await signup(widget_server.base_url)
    now = datetime.now(UTC)
    for body in [
        {"title": "Call the dentist", "priority": "high", "tags": ["health"], "due_at": iso(now + timedelta(days=2))},
        {"title": "Buy milk", "priority": "low", "tags": ["shop"], "due_at": iso(now + timedelta(days=1))},
        {"title": "Pay the rent", "due_at": iso(now - timedelta(days=1))},
        {"title": "Archive old mail", "description": "the inbox"},
    ]:
        await rest(widget_server.base_url, user, "POST", "/tasks", json=body)
    page = await open_page(widget_server.base_url)
    widget = Widget(page)
    await widget.login(user)
    titles = widget.root.locator(".task-title")
    await expect(titles).to_have_text(["Call the dentist", "Buy milk", "Pay the rent", "Archive old mail"])

    toggle = widget.root.get_by_role("button", name="Filter and sort")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    form = widget.root.get_by_role("search", name="Filter tasks")

    async def choose(label: str, value: str, query: str) -> None:
        """Pick `value` in the control labelled `label`; the list is asked of the server with `query`."""
        async with page.expect_request(lambda r: "/tasks?" in r.url and query in r.url) as asked:
            await form.get_by_label(label, exact=True).select_option(value)
        assert (await (await asked.value).response()).ok  # type: ignore[union-attr]

    await choose("Priority", "high", "priority=high")
    await expect(titles).to_have_text(["Call the dentist"])
    await choose("Priority", "", "limit=")
    await choose("Tag", "shop", "tag=shop")
    await expect(titles).to_have_text(["Buy milk"])
    await choose("Tag", "", "limit=")

    async with page.expect_request(lambda r: "overdue=true" in r.url):
        await form.get_by_label("Overdue only").check()
    await expect(titles).to_have_text(["Pay the rent"])
    await form.get_by_label("Overdue only").uncheck()

    async with page.expect_request(lambda r: "q=inbox" in r.url):
        await form.get_by_label("Search").fill("inbox")
    await expect(titles).to_have_text(["Archive old mail"])
    await form.get_by_label("Search").fill("")

    await choose("Sort by", "due", "sort=due")
    await expect(titles).to_have_text(["Pay the rent", "Buy milk", "Call the dentist", "Archive old mail"])
    await choose("Order", "desc", "order=desc")
    await expect(titles).to_have_text(["Call the dentist", "Buy milk", "Pay the rent", "Archive old mail"])
    await choose("Sort by", "title", "sort=title")  # back to the sort's own direction
    await expect(form.get_by_label("Order", exact=True)).to_have_value("asc")
    await expect(titles).to_have_text(["Archive old mail", "Buy milk", "Call the dentist", "Pay the rent"])

    # Pending only: a task completed elsewhere leaves the list, a new one joins it, live.
    await choose("Status", "pending", "status=pending")
    listed = await rest(widget_server.base_url, user, "GET", "/tasks")
    milk = next(t for t in listed["data"] if t["title"] == "Buy milk")
    await rest(widget_server.base_url, user, "PATCH", f"/tasks/{milk['id']}", json={"completed": True})
    await expect(titles).to_have_text(["Archive old mail", "Call the dentist", "Pay the rent"])
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Book flights"})
    await expect(titles).to_have_text(["Archive old mail", "Book flights", "Call the dentist", "Pay the rent"])
    await choose("Status", "completed", "status=completed")
    await expect(titles).to_have_text(["Buy milk"])

    # Clear filters: everything again; all of it works from the keyboard.
    await form.get_by_role("button", name="Clear filters").focus()
    await page.keyboard.press("Enter")
    await expect(titles).to_have_count(5)
    await form.get_by_label("Status").focus()
    await page.keyboard.press("ArrowDown")  # All -> Pending
    await expect(titles).to_have_count(4)


async def test_a_reminder_shows_in_every_tab_and_snooze_done_or_dismiss_closes_it_everywhere(
    server_process: ServerProcess, open_page: OpenPage
) -> None:
    await server_process.start()
    user = await signup(server_process.base_url)
    storage = {storage_key(server_process, "session"): stored_session(user)}
    options: dict[str, Any] = {"permissions": ["notifications"], "init_script": RECORD_NOTIFICATIONS}
    first = await open_page(server_process.base_url, storage=storage, **options)
    second = await open_page(server_process.base_url, beside=first)
    tabs = [Widget(first), Widget(second)]
    for tab in tabs:
        await tab.online()
        # Allowed already: no button to ask with.
        await expect(tab.root.get_by_role("button", name="Enable notifications")).to_be_hidden()

    soon = datetime.now(UTC) + timedelta(seconds=2)
    titles = ["Call the dentist", "Water the plants", "Take out the bins"]
    ids = {}
    for title in titles:
        body = {"title": title, "remind_at": iso(soon), "due_at": iso(soon + timedelta(hours=3))}
        ids[title] = (await rest(server_process.base_url, user, "POST", "/tasks", json=body))["id"]

    for tab in tabs:  # fired by the server's scheduler, a couple of seconds from now
        toasts = reminder_toasts(tab)
        await expect(toasts).to_have_count(3, timeout=TIMEOUT * 3000)
        await expect(toasts.first).to_contain_text("Reminder: Call the dentist")
        await expect(toasts.first).to_contain_text("Due in 2 h")
        notified = await tab.page.evaluate("window.__notifications.map((n) => n.title)")
        assert sorted(notified) == sorted(f"⏰ Reminder: {title}" for title in titles)

    # A reload shows them again (the tab keeps them), and does not notify again.
    await second.reload()
    await tabs[1].online()
    await expect(reminder_toasts(tabs[1])).to_have_count(3)
    assert await second.evaluate("window.__notifications") == []

    # Snooze in one tab: closed in both, and the reminder moved ten minutes on.
    await tabs[0].root.get_by_role("button", name="Snooze 10 min: Call the dentist").click()
    for tab in tabs:
        await expect(reminder_toasts(tab).filter(has_text="Call the dentist")).to_have_count(0)
        await expect(reminder_toasts(tab)).to_have_count(2)
    dentist = await rest(server_process.base_url, user, "GET", f"/tasks/{ids['Call the dentist']}")
    moved = datetime.fromisoformat(dentist["remind_at"].replace("Z", "+00:00"))
    if moved.tzinfo is None:
        moved = moved.replace(tzinfo=UTC)
    assert timedelta(minutes=9) < moved - datetime.now(UTC) <= timedelta(minutes=10)

    # Done in the other tab: the task is completed, the toast closes in both.
    await tabs[1].root.get_by_role("button", name="Mark Water the plants as done").click()
    for tab in tabs:
        await expect(reminder_toasts(tab)).to_have_count(1)
        await expect(tab.task("Water the plants")).to_be_checked()
    plants = await rest(server_process.base_url, user, "GET", f"/tasks/{ids['Water the plants']}")
    assert plants["completed"] is True

    # Dismissed (x), from the keyboard.
    await tabs[0].root.get_by_role("button", name="Dismiss the reminder for Take out the bins").focus()
    await first.keyboard.press("Enter")
    for tab in tabs:
        await expect(reminder_toasts(tab)).to_have_count(0)
    bins = await rest(server_process.base_url, user, "GET", f"/tasks/{ids['Take out the bins']}")
    assert bins["remind_at"] is None
    assert bins["completed"] is False

    # A reload resumes after the seqs it saw: no reminder comes back, none is kept.
    await first.reload()
    await tabs[0].online()
    await expect(tabs[0].task("Take out the bins")).to_be_visible()
    await expect(reminder_toasts(tabs[0])).to_have_count(0)


async def test_notifications_are_asked_for_only_from_a_click(widget_server: LiveServer, open_page: OpenPage) -> None:
    user = await signup(widget_server.base_url)
    storage = {storage_key(widget_server, "session"): stored_session(user)}
    # Headless Chromium answers "denied" before anyone asks: play a browser that has not asked yet.
    widget = Widget(await open_page(widget_server.base_url, storage=storage, init_script=UNASKED_NOTIFICATIONS))
    await widget.online()
    button = widget.root.get_by_role("button", name="Enable notifications")
    await expect(button).to_be_visible()
    assert await widget.page.evaluate("window.__asked") == []  # never asked unprompted
    await button.click()
    await expect(button).to_be_hidden()
    assert await widget.page.evaluate("window.__asked") == [True]  # asked once, with a user gesture


# --- accessibility (axe-core) ---------------------------------------------------------------


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the whole page, the widget's shadow root included."""
    await page.emulate_media(reduced_motion="reduce")  # no highlight animation mid-measurement
    # Evaluated through the DevTools protocol, not as a <script>: the page's CSP rightly refuses inline scripts.
    await page.evaluate(Path(node.require(node.AXE)).read_text())
    found: list[str] = await page.evaluate(
        """async () => {
            const { violations } = await axe.run(document, { resultTypes: ["violations"] });
            return violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .flatMap((v) => v.nodes.map(
                    (n) => `${v.impact} ${v.id}: ${JSON.stringify(n.target)}\n${n.failureSummary}`,
                ));
        }"""
    )
    return found


def assert_no_violations(found: list[str]) -> None:
    assert not found, "axe-core found:\n" + "\n".join(found)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_axe_finds_nothing_serious_logged_out(
    widget_server: LiveServer, open_page: OpenPage, viewport: ViewportSize
) -> None:
    page = await open_page(widget_server.base_url, viewport=viewport)
    await expect(Widget(page).root.get_by_label("Email")).to_be_visible()
    assert_no_violations(await serious_violations(page))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_axe_finds_nothing_serious_inside_a_conversation(
    widget_server: LiveServer, open_page: OpenPage, viewport: ViewportSize
) -> None:
    user = await signup(widget_server.base_url)
    await rest(widget_server.base_url, user, "POST", "/tasks", json={"title": "Renew passport"})
    now = datetime.now(UTC)
    for body in [  # every kind of chip: overdue, due soon, priorities, tags, repeating
        {"title": "Pay the rent", "due_at": iso(now - timedelta(days=2)), "priority": "high", "tags": ["home"]},
        {"title": "Water the plants", "due_at": iso(now + timedelta(hours=5)), "recurrence": "FREQ=DAILY"},
        {"title": "Sort the photos", "priority": "low", "tags": ["someday"]},
        {"title": "Call the dentist", "remind_at": iso(now + timedelta(seconds=2)), "due_at": iso(now + timedelta(1))},
    ]:
        await rest(widget_server.base_url, user, "POST", "/tasks", json=body)
    page = await open_page(widget_server.base_url, viewport=viewport)
    widget = Widget(page)
    await widget.login(user)
    await widget.turn("Add a task to buy groceries")
    await widget.turn("Mark buy groceries as done")  # tool lines, a done task
    await expect(reminder_toasts(widget)).to_have_count(1, timeout=TIMEOUT * 2000)  # a reminder toast on top
    assert_no_violations(await serious_violations(page))

    if viewport is PHONE:  # the drawer with the conversations and tasks
        await widget.root.get_by_role("button", name="Conversations and tasks").click()
        await expect(widget.task("Renew passport")).to_be_visible()
        assert_no_violations(await serious_violations(page))

    await widget.root.get_by_role("button", name="Filter and sort").click()  # the filter form
    await expect(widget.root.get_by_role("search", name="Filter tasks")).to_be_visible()
    assert_no_violations(await serious_violations(page))

    await widget.root.get_by_role("button", name="Signed-in devices").click()  # the session list
    await expect(widget.root.get_by_text("This device")).to_be_visible()
    assert_no_violations(await serious_violations(page))

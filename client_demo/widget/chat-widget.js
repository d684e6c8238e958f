/* Todo assistant: an embeddable chat widget. Plain JavaScript, no build step, no dependencies.
 *
 *   <script src="https://host/widget/chat-widget.js" data-server="https://host"></script>
 *
 * It speaks only the public protocol (docs/protocol.md): REST for accounts, conversations,
 * history and tasks; the WebSocket `/api/ws` for chat turns and live events. Everything the
 * server sends is rendered as text (textContent), never parsed as HTML.
 */
(function () {
  "use strict";

  if (window.TodoChat) return; // embedded twice: the first copy wins

  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 10000;
  const PING_EVERY_MS = 25000; // under the server's idle timeout (WS_IDLE_TIMEOUT, 300 s by default)
  const HANDSHAKE_TIMEOUT_MS = 10000;
  const ACK_TIMEOUT_MS = 10000;
  const BUSY_RETRY_MS = 1500;
  const NOTICE_MS = 8000;
  const MAX_MESSAGE_CHARS = 10000;
  const PAGE_SIZE = 50;
  const CLOSE_UNAUTHENTICATED = 4401;
  const CLOSE_TOO_MANY = 4429;

  const config = readConfig(document.currentScript);
  const storage = scopedStorage(`todochat:${config.server}:`);

  function readConfig(script) {
    const data = (script && script.dataset) || {};
    let origin = window.location.origin;
    if (script && script.src) origin = new URL(script.src, window.location.href).origin;
    const server = (data.server || origin).replace(/\/+$/, "");
    return {
      server,
      wsUrl: `${server.replace(/^http/i, "ws")}/api/ws`,
      title: data.title || "Todo assistant",
      open: data.open === "true",
    };
  }

  // sessionStorage, namespaced per server: survives a reload, not the closing of the tab.
  function scopedStorage(prefix) {
    return {
      get(name, fallback) {
        try {
          const raw = window.sessionStorage.getItem(prefix + name);
          return raw === null ? fallback : JSON.parse(raw);
        } catch (_) {
          return fallback;
        }
      },
      set(name, value) {
        try {
          window.sessionStorage.setItem(prefix + name, JSON.stringify(value));
        } catch (_) {
          /* storage full or disabled: the widget still works for this page's lifetime */
        }
      },
      remove(name) {
        try {
          window.sessionStorage.removeItem(prefix + name);
        } catch (_) {
          /* as above */
        }
      },
    };
  }

  function randomId(prefix) {
    const bytes = new Uint8Array(12);
    window.crypto.getRandomValues(bytes); // unlike randomUUID, available outside secure contexts too
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ------------------------------------------------------------------------------- REST

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
    }
  }

  async function request(method, path, { token, body } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(config.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(0, "network", "Cannot reach the server. Check your connection and try again.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, (data && data.code) || `http_${response.status}`, errorText(data, response));
    }
    return data;
  }

  function errorText(data, response) {
    if (data && typeof data.detail === "string") return data.detail;
    if (data && Array.isArray(data.detail)) {
      return data.detail
        .map((item) => {
          const field = Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : null;
          return typeof field === "string" ? `${field}: ${item.msg}` : String(item.msg);
        })
        .join("; ");
    }
    return `${response.status} ${response.statusText || "error"}`;
  }

  // ------------------------------------------------------------------------------- WebSocket

  /** One socket at a time: authenticates with a first frame, pings, reconnects with jittered backoff. */
  class Connection {
    constructor(hooks) {
      this.hooks = hooks; // authFrame(), onFrame(frame), onState(state, detail), onAuthFailed(reason)
      this.ws = null;
      this.state = "offline";
      this.running = false;
      this.authed = false;
      this.everOnline = false;
      this.attempt = 0;
      this.awaitingPong = false;
      this.retryTimer = null;
      this.handshakeTimer = null;
      this.pingTimer = null;
    }

    get online() {
      return this.authed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
    }

    start() {
      if (this.running) return;
      this.running = true;
      this.everOnline = false;
      this.attempt = 0;
      this._connect();
    }

    stop() {
      this.running = false;
      this._clearTimers();
      this._detach(1000, "logged out");
      this._setState("offline");
    }

    send(frame) {
      if (!this.online) return false;
      this.ws.send(JSON.stringify(frame));
      return true;
    }

    /** The browser says the network is back: skip the rest of the backoff. */
    retryNow() {
      if (!this.running || this.ws !== null) return;
      this.attempt = 0;
      this._connect();
    }

    wentOffline() {
      if (this.running && !this.online) this._setState("offline");
    }

    _connect() {
      this._clearTimers();
      if (navigator.onLine === false) {
        this._setState("offline"); // the window's "online" event calls retryNow()
        return;
      }
      this._setState(this.everOnline || this.attempt > 0 ? "reconnecting" : "connecting");
      let ws;
      try {
        ws = new WebSocket(config.wsUrl);
      } catch (_) {
        this._scheduleRetry(0);
        return;
      }
      this.ws = ws;
      this.authed = false;
      this.handshakeTimer = setTimeout(() => this._drop(), HANDSHAKE_TIMEOUT_MS);
      // Browsers cannot set headers on a WebSocket: the token goes in the first frame.
      ws.onopen = () => ws.send(JSON.stringify(this.hooks.authFrame()));
      ws.onmessage = (event) => this._onMessage(ws, event);
      ws.onclose = (event) => this._onClose(ws, event);
    }

    _onMessage(ws, event) {
      if (ws !== this.ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (!frame || typeof frame !== "object") return;
      if (frame.type === "hello") {
        clearTimeout(this.handshakeTimer);
        this.authed = true;
        this.everOnline = true;
        this.attempt = 0;
        this._startPing();
        this._setState("online");
      } else if (frame.type === "pong") {
        this.awaitingPong = false;
      }
      this.hooks.onFrame(frame);
    }

    _onClose(ws, event) {
      if (ws !== this.ws) return;
      this.ws = null;
      this.authed = false;
      this._clearTimers();
      if (!this.running) return;
      if (event.code === CLOSE_UNAUTHENTICATED) {
        this.running = false;
        this._setState("offline");
        this.hooks.onAuthFailed(event.reason);
        return;
      }
      this._scheduleRetry(event.code);
    }

    /** A stuck socket (no hello, no pong): abandon it without waiting for a closing handshake. */
    _drop() {
      this._detach(4000, "unresponsive");
      if (this.running) this._scheduleRetry(0);
    }

    _detach(code, reason) {
      const ws = this.ws;
      this.ws = null;
      this.authed = false;
      if (ws === null) return;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(code, reason);
      } catch (_) {
        /* already closed */
      }
    }

    _scheduleRetry(code) {
      this._clearTimers();
      if (navigator.onLine === false) {
        this._setState("offline");
        return;
      }
      this._setState("reconnecting", code === CLOSE_TOO_MANY ? "too-many" : "");
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      this.attempt += 1;
      // "Equal jitter": a server restart must not bring every client back in the same instant.
      const delay = code === CLOSE_TOO_MANY ? BACKOFF_CAP_MS : ceiling / 2 + (Math.random() * ceiling) / 2;
      this.retryTimer = setTimeout(() => this._connect(), delay);
    }

    _startPing() {
      clearInterval(this.pingTimer);
      this.awaitingPong = false;
      this.pingTimer = setInterval(() => {
        if (this.awaitingPong) {
          this._drop(); // the last ping went unanswered for a whole interval
          return;
        }
        this.awaitingPong = true;
        this.send({ type: "ping" });
      }, PING_EVERY_MS);
    }

    _clearTimers() {
      clearTimeout(this.retryTimer);
      clearTimeout(this.handshakeTimer);
      clearInterval(this.pingTimer);
    }

    _setState(state, detail = "") {
      if (state === this.state && !detail) return;
      this.state = state;
      this.hooks.onState(state, detail);
    }
  }

  // ------------------------------------------------------------------------------- text helpers

  function codePoints(text) {
    return Array.from(text); // the protocol's delta offsets count code points, not UTF-16 units
  }

  function parseTime(value) {
    if (!value) return null;
    const date = new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(value) ? value : `${value}Z`);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function shortTime(value) {
    const date = parseTime(value);
    if (!date) return "";
    const now = new Date();
    if (date.toDateString() === now.toDateString()) {
      return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
    return date.toLocaleDateString([], { month: "short", day: "numeric" });
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  /** A compact, human line for one tool call: "Added task: Buy groceries". */
  function describeTool(name, args, result, finished) {
    args = args && typeof args === "object" ? args : {};
    const ref = args.task_id ? `#${args.task_id}` : "";
    const title = (result && typeof result === "object" && !Array.isArray(result) && result.title) || args.title || ref;
    if (finished && result && typeof result === "object" && !Array.isArray(result) && result.error) {
      const what = { add_task: "add", complete_task: "complete", delete_task: "delete", update_task: "update" }[name];
      const task = what ? `${what} task${ref ? ` ${ref}` : ""}` : name;
      return { kind: "error", text: `Could not ${task}: ${result.message || result.error}` };
    }
    const done = (verb) => ({ kind: finished ? "ok" : "pending", text: `${verb}: ${title}` });
    switch (name) {
      case "add_task":
        return done(finished ? "Added task" : "Adding task");
      case "complete_task":
        return done(finished ? "Completed task" : "Completing task");
      case "delete_task":
        return done(finished ? "Deleted task" : "Deleting task");
      case "update_task":
        return done(finished ? "Updated task" : "Updating task");
      case "list_tasks": {
        const which = args.status && args.status !== "all" ? `${args.status} ` : "";
        if (!finished) return { kind: "pending", text: `Looking up ${which}tasks` };
        const count = Array.isArray(result) ? result.length : 0;
        return { kind: "ok", text: `Listed ${count} ${which}task${count === 1 ? "" : "s"}` };
      }
      default:
        return { kind: finished ? "ok" : "pending", text: finished ? `Used ${name}` : `Using ${name}` };
    }
  }

  // "#12", "task 12", "task #12", "(id 12)": how a reply may point at a task.
  const TASK_REF = /(?:#|\btask\s+#?|\bid\s*:?\s*)(\d{1,9})\b/gi;
  const LIST_ITEM = /^(?:[-*\u2022]|\d+[.)])\s+/;

  /** Task choices in a reply that asks "which one?": a question, and at least two distinct tasks.
   *
   * Tolerant by design: the question is any line that is not a list item (a task's own title may
   * end in "?"); the tasks are the references in the text, labelled by their list line.
   */
  function parseChoices(text) {
    const lines = (text || "").split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
    if (!lines.some((line) => !LIST_ITEM.test(line) && line.includes("?"))) return [];
    const found = new Map();
    for (const line of lines) {
      const ids = [...new Set(Array.from(line.matchAll(TASK_REF), (match) => Number(match[1])))];
      for (const id of ids) {
        if (found.has(id)) continue;
        const item = ids.length === 1 && LIST_ITEM.test(line);
        const label = item ? line.replace(LIST_ITEM, "") : `Task #${id}`;
        found.set(id, label.length > 80 ? `${label.slice(0, 79)}\u2026` : label);
      }
    }
    return found.size >= 2 ? Array.from(found, ([id, label]) => ({ id, label })) : [];
  }

  // ------------------------------------------------------------------------------- markup

  const ICONS = {
    chat: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 5.5A2.5 2.5 0 0 1 6.5 3h11A2.5 2.5 0 0 1 20 5.5v8a2.5 2.5 0 0 1-2.5 2.5H10l-4.2 3.6c-.6.5-1.3.1-1.3-.6V16A2.5 2.5 0 0 1 4 13.5z"/></svg>',
    send: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3.4 20.4 21 12 3.4 3.6l-.1 6.5L15 12 3.3 13.9z"/></svg>',
    stop: '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2"/></svg>',
    minimize: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M5 12h14" stroke-width="2.2" stroke-linecap="round"/></svg>',
    menu: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 7h16M4 12h16M4 17h16" stroke-width="2" stroke-linecap="round"/></svg>',
    logo: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="m6.5 12.5 3.5 3.5 7.5-8" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round" fill="none"/></svg>',
  };

  // Static markup only: no server data ever goes through innerHTML.
  const TEMPLATE = `
<button class="launcher" type="button" aria-label="Open the Todo assistant" aria-expanded="false" aria-controls="tc-panel">${ICONS.chat}</button>
<section class="panel" id="tc-panel" aria-labelledby="tc-title" hidden>
  <header class="bar">
    <button class="icon-btn menu-btn" type="button" aria-label="Conversations and tasks" aria-expanded="false" aria-controls="tc-sidebar">${ICONS.menu}</button>
    <span class="logo">${ICONS.logo}</span>
    <div class="heading">
      <h2 class="title" id="tc-title"></h2>
      <p class="conn" role="status" aria-label="Connection" data-state="offline"><span class="dot" aria-hidden="true"></span><span class="conn-text">Offline</span></p>
    </div>
    <div class="bar-actions">
      <span class="who" hidden></span>
      <button class="text-btn logout" type="button" hidden>Log out</button>
      <button class="icon-btn minimize" type="button" aria-label="Minimize the chat">${ICONS.minimize}</button>
    </div>
  </header>

  <div class="auth-view" hidden>
    <form class="auth" novalidate>
      <h3 class="auth-title">Log in</h3>
      <p class="auth-lead">Your tasks, managed by chatting: add, list, complete and delete them in plain words.</p>
      <label for="tc-email">Email</label>
      <input id="tc-email" name="email" type="email" autocomplete="email" required>
      <label for="tc-password">Password</label>
      <input id="tc-password" name="password" type="password" autocomplete="current-password" required aria-describedby="tc-password-hint">
      <p class="hint" id="tc-password-hint" hidden>At least 8 characters.</p>
      <p class="auth-error" role="alert"></p>
      <button class="primary auth-submit" type="submit">Log in</button>
      <p class="auth-switch"><span class="auth-switch-text">New here?</span> <button class="link auth-toggle" type="button">Create an account</button></p>
    </form>
  </div>

  <div class="app-view" hidden>
    <aside class="sidebar" id="tc-sidebar" aria-label="Conversations and tasks">
      <section class="side-section convs" aria-labelledby="tc-convs-h">
        <div class="section-head">
          <h3 id="tc-convs-h">Conversations</h3>
          <button class="small-btn new-conv" type="button" aria-label="New conversation">+ New</button>
        </div>
        <ul class="conv-list"></ul>
        <p class="side-empty conv-empty">No conversations yet.</p>
      </section>
      <section class="side-section tasks" aria-labelledby="tc-tasks-h">
        <div class="section-head">
          <h3 id="tc-tasks-h">Tasks</h3>
          <span class="task-count"></span>
        </div>
        <ul class="task-list" aria-labelledby="tc-tasks-h"></ul>
        <p class="side-empty task-empty">No tasks yet. Ask the assistant to add one.</p>
      </section>
    </aside>
    <div class="scrim" hidden></div>
    <div class="chat">
      <div class="scroller">
        <button class="load-earlier small-btn" type="button" hidden>Load earlier messages</button>
        <div class="empty" hidden>
          <p class="empty-title">What needs doing?</p>
          <p class="empty-lead">Tell the assistant in your own words. Try:</p>
          <div class="examples" role="group" aria-label="Example messages">
            <button class="chip example" type="button">Add a task to buy groceries</button>
            <button class="chip example" type="button">Show my tasks</button>
            <button class="chip example" type="button">Add a task to call the dentist</button>
          </div>
        </div>
        <div class="log" role="log" aria-live="polite" aria-relevant="additions text" aria-label="Messages"></div>
      </div>
      <div class="choices" role="group" aria-label="Which task?" hidden></div>
      <div class="notice" role="status" aria-label="Notice" hidden><span class="notice-text"></span><button class="icon-btn notice-close" type="button" aria-label="Dismiss">&times;</button></div>
      <form class="composer">
        <label class="sr-only" for="tc-input">Message</label>
        <textarea id="tc-input" rows="1" maxlength="${MAX_MESSAGE_CHARS}" placeholder="Message the assistant\u2026" aria-describedby="tc-input-hint"></textarea>
        <span class="sr-only" id="tc-input-hint">Enter sends, Shift+Enter starts a new line.</span>
        <button class="stop" type="button" hidden>${ICONS.stop}<span>Stop</span></button>
        <button class="send" type="submit" aria-label="Send">${ICONS.send}</button>
      </form>
    </div>
  </div>
</section>`;

  // Sizes are in px, never rem: the host page's root font size must not resize the widget.
  const STYLES = `
:host {
  all: initial !important;
  display: block !important;
  position: fixed !important;
  right: 0 !important; bottom: 0 !important; left: auto !important; top: auto !important;
  width: 0 !important; height: 0 !important;
  margin: 0 !important; padding: 0 !important; border: 0 !important;
  transform: none !important; filter: none !important; contain: none !important;
  z-index: 2147483000 !important;
  --accent: #4f46e5; --accent-strong: #4338ca; --accent-soft: #eef2ff;
  --text: #111827; --muted: #6b7280; --faint: #9ca3af;
  --line: #e5e7eb; --surface: #f8fafc; --bg: #ffffff; --bubble: #f1f5f9;
  --ok: #059669; --warn: #d97706; --bad: #dc2626;
  --radius: 14px;
  --shadow: 0 24px 48px -12px rgba(15, 23, 42, .28), 0 2px 6px rgba(15, 23, 42, .08);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif !important;
  color: var(--text) !important;
  -webkit-font-smoothing: antialiased !important;
}
*, *::before, *::after { box-sizing: border-box; }
[hidden] { display: none !important; }
button, input, textarea { font: inherit; color: inherit; letter-spacing: normal; text-transform: none; }
button { cursor: pointer; }
:focus { outline: none; }
:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
svg { width: 20px; height: 20px; fill: currentColor; stroke: currentColor; stroke-width: 0; flex: none; }
.sr-only { position: absolute !important; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
h2, h3, p { margin: 0; }

.launcher {
  position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border-radius: 50%;
  border: 0; background: var(--accent); color: #fff; display: grid; place-items: center;
  box-shadow: var(--shadow); transition: transform .15s ease, background .15s ease;
}
.launcher:hover { background: var(--accent-strong); transform: translateY(-1px); }
.launcher svg { width: 26px; height: 26px; }

.panel {
  position: fixed; right: 20px; bottom: 20px;
  width: min(720px, calc(100vw - 40px)); height: min(640px, calc(100vh - 40px));
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--bg); border: 1px solid var(--line); border-radius: var(--radius); box-shadow: var(--shadow);
}

.bar {
  display: flex; align-items: center; gap: 10px; padding: 10px 12px 10px 14px;
  border-bottom: 1px solid var(--line); background: var(--bg); flex: none;
}
.logo { width: 32px; height: 32px; border-radius: 10px; background: var(--accent); color: #fff; display: grid; place-items: center; flex: none; }
.logo svg { stroke: #fff; }
.heading { min-width: 0; flex: 1; }
.title { font-size: 15px; font-weight: 650; line-height: 1.2; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.panel:not(.signed-in) .conn { display: none; } /* no session, nothing to connect */
.conn { display: flex; align-items: center; gap: 6px; font-size: 12px; color: var(--muted); }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--faint); }
.conn[data-state="online"] .dot { background: var(--ok); }
.conn[data-state="connecting"] .dot, .conn[data-state="reconnecting"] .dot { background: var(--warn); animation: pulse 1.2s ease-in-out infinite; }
.conn[data-state="offline"] .dot { background: var(--bad); }
.bar-actions { display: flex; align-items: center; gap: 4px; min-width: 0; }
.who { font-size: 12px; color: var(--muted); max-width: 180px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; margin-right: 4px; }
.icon-btn { width: 34px; height: 34px; border: 0; border-radius: 8px; background: transparent; color: var(--muted); display: grid; place-items: center; flex: none; }
.icon-btn:hover { background: var(--surface); color: var(--text); }
.icon-btn svg { stroke: currentColor; }
.menu-btn { display: none; }
.text-btn { border: 0; background: transparent; color: var(--muted); padding: 6px 8px; border-radius: 8px; font-size: 13px; }
.text-btn:hover { background: var(--surface); color: var(--text); }

.auth-view { flex: 1; overflow: auto; display: grid; place-items: center; padding: 24px; background: var(--surface); }
.auth { width: min(360px, 100%); display: flex; flex-direction: column; gap: 6px; background: var(--bg); padding: 24px; border: 1px solid var(--line); border-radius: var(--radius); }
.auth-title { font-size: 18px; font-weight: 650; }
.auth-lead { color: var(--muted); margin-bottom: 10px; }
.auth label { font-weight: 550; font-size: 13px; margin-top: 6px; }
.auth input { padding: 10px 12px; border: 1px solid #d1d5db; border-radius: 10px; background: var(--bg); }
.auth input:focus-visible { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
.hint { color: var(--muted); font-size: 12px; }
.auth-error { color: var(--bad); font-size: 13px; min-height: 18px; }
.primary { margin-top: 4px; padding: 10px 14px; border: 0; border-radius: 10px; background: var(--accent); color: #fff; font-weight: 600; }
.primary:hover { background: var(--accent-strong); }
.primary:disabled { opacity: .6; cursor: progress; }
.auth-switch { color: var(--muted); font-size: 13px; text-align: center; margin-top: 6px; }
.link { border: 0; background: none; padding: 0; color: var(--accent); font-weight: 600; text-decoration: underline; text-underline-offset: 2px; }

.app-view { flex: 1; display: flex; min-height: 0; position: relative; }
.sidebar { width: 240px; flex: none; display: flex; flex-direction: column; border-right: 1px solid var(--line); background: var(--surface); min-height: 0; }
.side-section { display: flex; flex-direction: column; min-height: 0; padding: 12px 10px 8px; }
.convs { flex: 0 1 auto; max-height: 42%; border-bottom: 1px solid var(--line); }
.tasks { flex: 1 1 auto; }
.section-head { display: flex; align-items: center; justify-content: space-between; padding: 0 4px 8px; }
.section-head h3 { font-size: 12px; font-weight: 650; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.task-count { font-size: 12px; color: var(--muted); }
.small-btn { border: 1px solid var(--line); background: var(--bg); border-radius: 8px; padding: 3px 9px; font-size: 12px; font-weight: 600; color: var(--accent); }
.small-btn:hover { border-color: var(--accent); }
.conv-list, .task-list { list-style: none; margin: 0; padding: 0; overflow-y: auto; min-height: 0; }
.side-empty { color: var(--faint); font-size: 13px; padding: 2px 6px; }
.conv { width: 100%; display: flex; align-items: center; gap: 8px; text-align: left; border: 0; background: transparent; padding: 7px 8px; border-radius: 8px; }
.conv:hover { background: #eef0f4; }
.conv[aria-current="true"] { background: var(--accent-soft); color: var(--accent-strong); }
.conv-title { flex: 1; min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-size: 13px; }
.conv-time { font-size: 11px; color: var(--faint); flex: none; }
.unread { width: 8px; height: 8px; border-radius: 50%; background: var(--accent); flex: none; }
.task { display: flex; align-items: flex-start; gap: 8px; padding: 6px 6px; border-radius: 8px; }
.task:hover { background: #eef0f4; }
.task input { margin: 2px 0 0; width: 16px; height: 16px; accent-color: var(--accent); flex: none; cursor: pointer; }
.task label { flex: 1; min-width: 0; cursor: pointer; overflow-wrap: anywhere; font-size: 13px; }
.task-desc { display: block; color: var(--muted); font-size: 12px; }
.task-id { color: var(--faint); font-size: 11px; flex: none; margin-top: 2px; }
.task.done .task-title { text-decoration: line-through; color: var(--faint); }
.task.fresh { animation: flash 1.2s ease-out; }
.scrim { position: absolute; inset: 0; background: rgba(15, 23, 42, .25); z-index: 1; }

.chat { flex: 1; display: flex; flex-direction: column; min-width: 0; min-height: 0; }
.scroller { flex: 1; overflow-y: auto; padding: 16px 16px 8px; display: flex; flex-direction: column; gap: 8px; }
.load-earlier { align-self: center; }
.empty { margin: auto; text-align: center; max-width: 340px; padding: 12px; }
.empty-title { font-size: 17px; font-weight: 650; margin-bottom: 4px; }
.empty-lead { color: var(--muted); margin-bottom: 12px; }
.examples { display: flex; flex-wrap: wrap; gap: 8px; justify-content: center; }
.chip { border: 1px solid var(--line); background: var(--bg); border-radius: 999px; padding: 6px 12px; font-size: 13px; color: var(--text); }
.chip:hover { border-color: var(--accent); color: var(--accent-strong); background: var(--accent-soft); }
.log { display: flex; flex-direction: column; gap: 8px; }
.msg { display: flex; flex-direction: column; max-width: 85%; }
.msg.user { align-self: flex-end; align-items: flex-end; }
.msg.assistant { align-self: flex-start; align-items: flex-start; }
.bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.user .bubble { background: var(--accent); color: #fff; border-bottom-right-radius: 5px; }
.msg.assistant .bubble { background: var(--bubble); border-bottom-left-radius: 5px; }
.msg.pending .bubble { opacity: .75; }
.msg.failed .bubble { background: #fee2e2; color: #7f1d1d; }
.meta { font-size: 11px; color: var(--faint); margin: 3px 6px 0; }
.msg.failed .meta, .msg .meta.bad { color: var(--bad); }
.typing { display: inline-flex; gap: 4px; padding: 4px 0; }
.typing i { width: 6px; height: 6px; border-radius: 50%; background: var(--faint); animation: bounce 1s infinite ease-in-out; }
.typing i:nth-child(2) { animation-delay: .15s; }
.typing i:nth-child(3) { animation-delay: .3s; }
.tool { align-self: flex-start; display: inline-flex; align-items: center; gap: 7px; max-width: 90%; font-size: 12.5px; color: #374151; background: var(--bg); border: 1px solid var(--line); border-radius: 999px; padding: 3px 11px 3px 4px; }
.tool-icon { width: 18px; height: 18px; border-radius: 50%; display: grid; place-items: center; font-size: 11px; font-weight: 700; color: #fff; background: var(--ok); flex: none; }
.tool.pending .tool-icon { background: var(--faint); }
.tool.error .tool-icon { background: var(--bad); }
.tool-text { overflow-wrap: anywhere; }
.choices { display: flex; flex-wrap: wrap; gap: 6px; padding: 4px 16px 8px; }
.notice { display: flex; align-items: center; gap: 8px; margin: 0 16px 8px; padding: 7px 8px 7px 12px; border-radius: 10px; background: #fffbeb; color: #92400e; border: 1px solid #fde68a; font-size: 13px; }
.notice-text { flex: 1; }
.notice .icon-btn { width: 26px; height: 26px; font-size: 18px; color: inherit; }
.composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px 12px; border-top: 1px solid var(--line); flex: none; }
.composer textarea {
  flex: 1; resize: none; min-height: 42px; max-height: 140px; padding: 10px 13px; line-height: 20px;
  border: 1px solid #d1d5db; border-radius: 12px; background: var(--bg); overflow-y: auto;
}
.composer textarea:focus-visible { outline: 2px solid var(--accent); outline-offset: 0; border-color: var(--accent); }
.send { width: 42px; height: 42px; border: 0; border-radius: 12px; background: var(--accent); color: #fff; display: grid; place-items: center; flex: none; }
.send:hover { background: var(--accent-strong); }
.stop { height: 42px; display: inline-flex; align-items: center; gap: 6px; padding: 0 12px; border: 1px solid var(--line); border-radius: 12px; background: var(--bg); font-weight: 600; flex: none; }
.stop:hover { border-color: var(--bad); color: var(--bad); }
.stop svg { width: 14px; height: 14px; }
.stop:disabled { opacity: .6; cursor: progress; }

@keyframes pulse { 50% { opacity: .35; } }
@keyframes bounce { 0%, 80%, 100% { transform: translateY(0); opacity: .5; } 40% { transform: translateY(-4px); opacity: 1; } }
@keyframes flash { from { background: #dcfce7; } to { background: transparent; } }
@media (prefers-reduced-motion: reduce) { *, *::before, *::after { animation: none !important; transition: none !important; } }

/* Narrow panels: conversations and tasks move into a drawer. */
@media (max-width: 820px) {
  .panel { width: min(440px, calc(100vw - 40px)); }
  .panel.signed-in .menu-btn { display: grid; }
  .sidebar {
    position: absolute; top: 0; bottom: 0; left: 0; z-index: 2; width: min(300px, 85%);
    transform: translateX(-100%); visibility: hidden; transition: transform .18s ease, visibility .18s;
    box-shadow: var(--shadow);
  }
  .panel.drawer-open .sidebar { transform: none; visibility: visible; }
  .who { display: none; }
}
@media (min-width: 821px) { .scrim { display: none !important; } }
/* Phones: the panel takes the whole screen. */
@media (max-width: 600px) {
  .panel { inset: 0; width: auto; height: auto; border: 0; border-radius: 0; box-shadow: none; }
  .launcher { right: 16px; bottom: 16px; }
  .msg { max-width: 90%; }
  .composer textarea { font-size: 16px; } /* 16px stops iOS from zooming into the field */
}`;

  // ------------------------------------------------------------------------------- the widget

  class Widget {
    constructor() {
      this.host = document.createElement("todo-chat-widget");
      this.root = this.host.attachShadow({ mode: "open" });
      this._adoptStyles();
      const holder = document.createElement("div");
      holder.innerHTML = TEMPLATE; // static markup, see TEMPLATE
      this.root.append(...holder.childNodes);
      this.$ = (selector) => this.root.querySelector(selector);
      this.el = {
        launcher: this.$(".launcher"),
        panel: this.$(".panel"),
        title: this.$(".title"),
        conn: this.$(".conn"),
        connText: this.$(".conn-text"),
        who: this.$(".who"),
        logout: this.$(".logout"),
        minimize: this.$(".minimize"),
        menu: this.$(".menu-btn"),
        authView: this.$(".auth-view"),
        authForm: this.$(".auth"),
        authTitle: this.$(".auth-title"),
        authSubmit: this.$(".auth-submit"),
        authToggle: this.$(".auth-toggle"),
        authSwitchText: this.$(".auth-switch-text"),
        authError: this.$(".auth-error"),
        email: this.$("#tc-email"),
        password: this.$("#tc-password"),
        passwordHint: this.$("#tc-password-hint"),
        appView: this.$(".app-view"),
        sidebar: this.$(".sidebar"),
        scrim: this.$(".scrim"),
        newConv: this.$(".new-conv"),
        convList: this.$(".conv-list"),
        convEmpty: this.$(".conv-empty"),
        taskList: this.$(".task-list"),
        taskEmpty: this.$(".task-empty"),
        taskCount: this.$(".task-count"),
        scroller: this.$(".scroller"),
        loadEarlier: this.$(".load-earlier"),
        empty: this.$(".empty"),
        log: this.$(".log"),
        choices: this.$(".choices"),
        notice: this.$(".notice"),
        noticeText: this.$(".notice-text"),
        composer: this.$(".composer"),
        input: this.$("#tc-input"),
        send: this.$(".send"),
        stop: this.$(".stop"),
      };
      this.el.title.textContent = config.title;
      this.el.launcher.setAttribute("aria-label", `Open the ${config.title}`);

      this.session = storage.get("session", null); // {token, userId, email}
      this.outbox = storage.get("outbox", []); // unacked chat messages, oldest first
      this.lastSeq = null; // highest event seq seen (de-duplication and resume)
      this.authMode = "login";
      this._resetData();

      this.conn = new Connection({
        authFrame: () => this._authFrame(),
        onFrame: (frame) => this._onFrame(frame),
        onState: (state, detail) => this._onConnState(state, detail),
        onAuthFailed: (reason) => this._signOut({ expired: true, reason }),
      });
      this.handlers = {
        hello: (f) => this._onHello(f),
        ack: (f) => this._onAck(f),
        message: (f) => this._onMessage(f),
        "turn.start": (f) => this._onTurnStart(f),
        delta: (f) => this._onDelta(f),
        "tool.call": (f) => this._onToolCall(f),
        "tool.result": (f) => this._onToolResult(f),
        "turn.end": (f) => this._onTurnEnd(f),
        "task.created": (f) => this._onTask(f),
        "task.updated": (f) => this._onTask(f),
        "task.deleted": (f) => this._onTaskDeleted(f),
        "conversation.deleted": (f) => this._onConversationDeleted(f),
        error: (f) => this._onError(f),
        resync_required: (f) => this._onResync(f),
      };
      this._bindUi();
    }

    _adoptStyles() {
      // A constructed sheet is not subject to a host page's CSP on inline <style>.
      try {
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(STYLES);
        this.root.adoptedStyleSheets = [sheet];
      } catch (_) {
        const style = document.createElement("style");
        style.textContent = STYLES;
        this.root.append(style);
      }
    }

    _resetData() {
      this.conversations = []; // [{id, title, updated_at, unread}] newest first
      this.conversationId = null; // null: a new conversation (created by its first message)
      this.draftKey = storage.get("draft", null) || this._newDraft();
      this.tasks = new Map();
      this.turns = new Map(); // turn_id -> {conversationId, text: [code points], gap, cancelling, tools}
      this.viewEls = new Map(); // key -> element in the message log
      this.oldestId = null;
      this.hasMore = false;
      this.loaded = false;
      this.reloading = false;
      this.reloadAgain = false;
      this.buffered = [];
      this.inflight = null;
      clearTimeout(this.ackTimer);
      clearTimeout(this.flushTimer);
    }

    _newDraft() {
      // Messages typed into a new conversation share this key until the first one creates it.
      const key = randomId("d-");
      storage.set("draft", key);
      return key;
    }

    mount() {
      const attach = () => {
        document.body.append(this.host);
        const open = storage.get("open", null);
        this._setOpen(open === null ? config.open : open, { focus: false });
        if (this.session) this._enterApp({ focus: false });
        else this._showAuth();
      };
      if (document.body) attach();
      else document.addEventListener("DOMContentLoaded", attach, { once: true });
      window.addEventListener("online", () => this.conn.retryNow());
      window.addEventListener("offline", () => this.conn.wentOffline());
    }

    // --- UI wiring ----------------------------------------------------------------------------

    _bindUi() {
      const el = this.el;
      el.launcher.addEventListener("click", () => this._setOpen(true));
      el.minimize.addEventListener("click", () => this._setOpen(false));
      el.logout.addEventListener("click", () => this._signOut({}));
      el.menu.addEventListener("click", () => this._setDrawer(!el.panel.classList.contains("drawer-open")));
      el.scrim.addEventListener("click", () => this._setDrawer(false));
      el.panel.addEventListener("keydown", (event) => {
        if (event.key !== "Escape") return;
        if (el.panel.classList.contains("drawer-open")) {
          this._setDrawer(false);
          el.menu.focus();
        } else {
          this._setOpen(false);
        }
      });
      el.authForm.addEventListener("submit", (event) => {
        event.preventDefault();
        this._submitAuth();
      });
      el.authToggle.addEventListener("click", () => this._setAuthMode(this.authMode === "login" ? "signup" : "login"));
      el.newConv.addEventListener("click", () => {
        this._setDrawer(false);
        this._selectConversation(null, { focus: true });
      });
      el.loadEarlier.addEventListener("click", () => this._loadEarlier());
      el.composer.addEventListener("submit", (event) => {
        event.preventDefault();
        this._submitMessage(el.input.value);
      });
      el.input.addEventListener("keydown", (event) => {
        // Enter sends, Shift+Enter is a new line; never while an IME is composing a character.
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          this._submitMessage(el.input.value);
        }
      });
      el.input.addEventListener("input", () => this._autosize());
      el.stop.addEventListener("click", () => this._cancelTurn());
      for (const button of this.root.querySelectorAll(".example")) {
        button.addEventListener("click", () => this._submitMessage(button.textContent));
      }
      this.root.querySelector(".notice-close").addEventListener("click", () => this._hideNotice());
    }

    _setOpen(open, { focus = true } = {}) {
      this.el.panel.hidden = !open;
      this.el.launcher.hidden = open;
      this.el.launcher.setAttribute("aria-expanded", String(open));
      storage.set("open", open);
      if (!focus) return;
      if (open) this._focusDefault();
      else this.el.launcher.focus();
    }

    _setDrawer(open) {
      this.el.panel.classList.toggle("drawer-open", open);
      this.el.menu.setAttribute("aria-expanded", String(open));
      this.el.scrim.hidden = !open;
      if (open) (this.el.convList.querySelector("button") || this.el.newConv).focus();
    }

    _focusDefault() {
      if (this.session) this.el.input.focus();
      else this.el.email.focus();
    }

    _autosize() {
      const input = this.el.input;
      input.style.height = "auto";
      input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
    }

    _notice(text) {
      this.el.noticeText.textContent = text;
      this.el.notice.hidden = false;
      clearTimeout(this.noticeTimer);
      this.noticeTimer = setTimeout(() => this._hideNotice(), NOTICE_MS);
    }

    _hideNotice() {
      this.el.notice.hidden = true;
      this.el.noticeText.textContent = "";
    }

    _onConnState(state, detail) {
      const labels = { connecting: "Connecting\u2026", online: "Online", reconnecting: "Reconnecting\u2026", offline: "Offline" };
      this.el.conn.dataset.state = state;
      this.el.connText.textContent = labels[state] || state;
      if (detail === "too-many") this._notice("Too many open chat windows for this account: close some tabs.");
      this._refreshPendingLabels();
      this._renderComposer();
      if (state === "online") this._hideNotice();
    }

    // --- authentication -------------------------------------------------------------------------

    _showAuth(message = "") {
      this.el.appView.hidden = true;
      this.el.authView.hidden = false;
      this.el.who.hidden = true;
      this.el.logout.hidden = true;
      this._setDrawer(false);
      this.el.panel.classList.remove("signed-in");
      this._setAuthMode(this.authMode);
      this.el.authError.textContent = message;
    }

    _setAuthMode(mode) {
      this.authMode = mode;
      const signup = mode === "signup";
      this.el.authTitle.textContent = signup ? "Create your account" : "Log in";
      this.el.authSubmit.textContent = signup ? "Sign up" : "Log in";
      this.el.authSwitchText.textContent = signup ? "Already have an account?" : "New here?";
      this.el.authToggle.textContent = signup ? "Log in instead" : "Create an account";
      this.el.password.autocomplete = signup ? "new-password" : "current-password";
      this.el.passwordHint.hidden = !signup;
      this.el.authError.textContent = "";
    }

    async _submitAuth() {
      const email = this.el.email.value.trim();
      const password = this.el.password.value;
      if (!email || !password) {
        this.el.authError.textContent = "Enter your email and password.";
        (email ? this.el.password : this.el.email).focus();
        return;
      }
      const signup = this.authMode === "signup";
      if (signup && password.length < 8) {
        this.el.authError.textContent = "Choose a password of at least 8 characters.";
        this.el.password.focus();
        return;
      }
      this.el.authSubmit.disabled = true;
      this.el.authError.textContent = "";
      try {
        const body = await request("POST", signup ? "/api/auth/signup" : "/api/auth/login", {
          body: { email, password },
        });
        this._startSession({ token: body.token, userId: body.id, email: body.email });
      } catch (error) {
        this.el.authError.textContent =
          error.status === 409 ? "An account with this email already exists: log in instead." : error.message;
      } finally {
        this.el.authSubmit.disabled = false;
      }
    }

    _startSession(session) {
      const seq = storage.get("seq", null);
      if (!seq || seq.userId !== session.userId) {
        // Another account used this tab before: none of its positions apply.
        for (const name of ["seq", "conversation", "draft"]) storage.remove(name);
      }
      this.outbox = this.outbox.filter((entry) => entry.userId === session.userId);
      this._saveOutbox();
      this.session = session;
      storage.set("session", session);
      this.el.password.value = "";
      this._enterApp({ focus: true });
    }

    _enterApp({ focus }) {
      this._resetData();
      const seq = storage.get("seq", null);
      this.lastSeq = seq && seq.userId === this.session.userId ? seq.seq : null;
      this.el.authView.hidden = true;
      this.el.appView.hidden = false;
      this.el.who.hidden = false;
      this.el.who.textContent = this.session.email;
      this.el.logout.hidden = false;
      this.el.panel.classList.add("signed-in");
      this._clearLog();
      this._renderConversations();
      this._renderTasks();
      this._renderEmpty();
      this._renderComposer();
      this.conn.start();
      if (focus && !this.el.panel.hidden) this.el.input.focus();
    }

    _signOut({ expired = false, reason = "" }) {
      this.conn.stop();
      this.session = null;
      storage.remove("session");
      if (!expired) {
        // A deliberate log out forgets everything, unsent messages included (shared computers).
        this.outbox = [];
        storage.remove("outbox");
        storage.remove("seq");
        storage.remove("conversation");
        storage.remove("draft");
      }
      this._resetData();
      this._clearLog();
      this._renderChoices();
      this._hideNotice();
      const message = expired ? `Your session ended${reason ? ` (${reason})` : ""}. Please log in again.` : "";
      this._setAuthMode("login");
      this._showAuth(message);
      if (!this.el.panel.hidden) this.el.email.focus();
    }

    _authFrame() {
      const frame = { type: "auth", token: this.session ? this.session.token : "" };
      if (this.lastSeq !== null) frame.after_seq = this.lastSeq; // replay what this tab missed
      return frame;
    }

    _api(method, path, body) {
      const session = this.session;
      if (!session) return Promise.reject(new ApiError(401, "unauthorized", "Not logged in"));
      return request(method, `/api/${session.userId}${path}`, { token: session.token, body }).catch((error) => {
        if (error.status === 401 && this.session === session) this._signOut({ expired: true });
        throw error;
      });
    }

    // --- events -----------------------------------------------------------------------------

    _onFrame(frame) {
      if (typeof frame.seq === "number" && frame.type !== "ack") {
        if (this.lastSeq !== null && frame.seq <= this.lastSeq) return; // seen already (replay overlap)
        this._setLastSeq(frame.seq);
        if (this.reloading) {
          this.buffered.push(frame); // applied on top of the REST snapshot being loaded
          return;
        }
      }
      this._dispatch(frame);
    }

    _dispatch(frame) {
      const handler = this.handlers[frame.type];
      if (handler) handler(frame);
    }

    _setLastSeq(seq) {
      this.lastSeq = seq;
      storage.set("seq", { userId: this.session.userId, seq });
    }

    _onHello(frame) {
      if (this.lastSeq === null) this._setLastSeq(frame.last_seq);
      if (!this.loaded) this._reload();
      this._flushOutbox();
    }

    _onResync(frame) {
      // The server cannot replay what we missed: take REST's state, then continue from its seq.
      this._setLastSeq(frame.last_seq);
      this.turns.clear();
      this.loaded = false;
      this._reload();
    }

    async _reload() {
      if (this.reloading) {
        this.reloadAgain = true;
        return;
      }
      this.reloading = true;
      const session = this.session;
      try {
        do {
          this.reloadAgain = false;
          const [convs, tasks] = await Promise.all([
            this._api("GET", "/conversations?limit=50"),
            this._api("GET", "/tasks?limit=500"),
          ]);
          if (this.session !== session) return;
          const unread = new Set(this.conversations.filter((c) => c.unread).map((c) => c.id));
          this.conversations = convs.data.map((c) => ({ ...c, unread: unread.has(c.id) }));
          this.tasks = new Map(tasks.data.map((task) => [task.id, task]));
          this._renderConversations();
          this._renderTasks();
          let target = this.conversationId;
          if (!this.loaded) {
            const stored = storage.get("conversation", undefined);
            target = stored === undefined && this.conversations.length ? this.conversations[0].id : stored;
          }
          if (target !== null && target !== undefined && !this.conversations.some((c) => c.id === target)) {
            target = null;
          }
          await this._loadConversation(target === undefined ? null : target, { keepDraft: true });
        } while (this.reloadAgain && this.session === session);
        this.loaded = true;
      } catch (error) {
        if (this.session === session && error.status !== 401) this._notice(`Could not load your data: ${error.message}`);
      } finally {
        this.reloading = false;
        const buffered = this.buffered;
        this.buffered = [];
        if (this.session === session) buffered.forEach((frame) => this._dispatch(frame));
        this._renderComposer();
        this._flushOutbox();
      }
    }

    _onAck(frame) {
      const entry = this.outbox.find((e) => e.client_msg_id === frame.client_msg_id);
      if (this.inflight === frame.client_msg_id) {
        this.inflight = null;
        clearTimeout(this.ackTimer);
      }
      if (entry) {
        this.outbox = this.outbox.filter((e) => e !== entry);
        if (entry.conversation_id === null) {
          // The first message of a new conversation created it: its followers go there too.
          for (const other of this.outbox) {
            if (other.draft === entry.draft && other.conversation_id === null) other.conversation_id = frame.conversation_id;
          }
          if (this.conversationId === null && this.draftKey === entry.draft) {
            this.conversationId = frame.conversation_id;
            storage.set("conversation", frame.conversation_id);
          }
          if (!this.conversations.some((c) => c.id === frame.conversation_id)) {
            // Shown at once; the refresh below brings the server's own title and times.
            const title = entry.message.split(/\s+/).join(" ").trim();
            const now = new Date().toISOString();
            this.conversations.unshift({ id: frame.conversation_id, title, created_at: now, updated_at: now, unread: false });
            this._renderConversations();
          }
          this._refreshConversationsSoon();
        }
        this._saveOutbox();
      }
      const pending = this.viewEls.get(`c:${frame.client_msg_id}`);
      if (pending) {
        this.viewEls.delete(`c:${frame.client_msg_id}`);
        if (this.viewEls.has(`m:${frame.message_id}`) || frame.conversation_id !== this.conversationId) {
          pending.remove(); // the `message` event got here first (a replay): keep that one
        } else {
          pending.classList.remove("pending");
          delete pending.dataset.pending;
          pending.dataset.id = String(frame.message_id);
          pending.querySelector(".meta").textContent = "";
          pending.querySelector(".meta").hidden = true;
          this.viewEls.set(`m:${frame.message_id}`, pending);
          this._place(pending, frame.message_id);
        }
      }
      this._refreshPendingLabels();
      this._flushOutbox();
    }

    _onMessage(frame) {
      const message = frame.message;
      const conversation = this.conversations.find((c) => c.id === frame.conversation_id);
      if (conversation) {
        conversation.updated_at = message.created_at;
        if (frame.conversation_id !== this.conversationId) conversation.unread = true;
        this._sortConversations();
        this._renderConversations();
      } else {
        this._refreshConversationsSoon(); // started in another tab, or just now by our own ack
      }
      if (frame.conversation_id === this.conversationId) {
        this._withScroll(() => this._upsertMessage(message));
        this._renderEmpty();
        this._renderChoices();
      }
    }

    _onTurnStart(frame) {
      this.turns.set(frame.turn_id, {
        conversationId: frame.conversation_id,
        text: [],
        gap: false,
        cancelling: false,
        tools: new Map(),
      });
      if (frame.conversation_id === this.conversationId && !this._hasReply(frame.turn_id)) {
        this._withScroll(() => this._streamBubble(frame.turn_id));
      }
      this._renderComposer();
      this._renderChoices();
      this._refreshPendingLabels();
    }

    _onDelta(frame) {
      const turn = this.turns.get(frame.turn_id);
      if (!turn || turn.gap) return;
      const chunk = codePoints(frame.text);
      const have = turn.text.length;
      if (frame.offset > have) {
        turn.gap = true; // missed deltas (a reconnect mid-turn): the final `message` has it all
      } else if (frame.offset + chunk.length > have) {
        turn.text.push(...chunk.slice(have - frame.offset)); // a repeated delta adds nothing
      } else {
        return;
      }
      if (turn.conversationId === this.conversationId) this._withScroll(() => this._renderStream(frame.turn_id));
    }

    _onToolCall(frame) {
      const turn = this.turns.get(frame.turn_id);
      if (!turn) return;
      turn.tools.set(frame.call_id, { name: frame.name, arguments: frame.arguments, result: undefined, done: false });
      if (turn.conversationId === this.conversationId) this._withScroll(() => this._renderTool(frame.turn_id, frame.call_id));
    }

    _onToolResult(frame) {
      const turn = this.turns.get(frame.turn_id);
      if (!turn) return;
      const call = turn.tools.get(frame.call_id);
      if (!call) return;
      call.result = frame.result;
      call.done = true;
      if (turn.conversationId === this.conversationId) this._renderTool(frame.turn_id, frame.call_id);
    }

    _onTurnEnd(frame) {
      this.turns.delete(frame.turn_id);
      const bubble = this.viewEls.get(`s:${frame.turn_id}`);
      if (bubble) {
        // No final `message` came for this turn (its conversation was deleted mid-turn).
        this.viewEls.delete(`s:${frame.turn_id}`);
        if (frame.status === "done") bubble.remove();
        else this._finishBubble(bubble, { status: frame.status, content: "" }, frame.reason);
      }
      if (frame.status === "failed" && frame.reason && frame.conversation_id === this.conversationId) {
        this._notice(`The assistant could not finish: ${frame.reason}`);
      }
      this._renderComposer();
      this._renderChoices();
      this._refreshPendingLabels();
      this._flushOutbox(); // a message waiting for this conversation can go now
    }

    _onTask(frame) {
      const isNew = !this.tasks.has(frame.task.id);
      this.tasks.set(frame.task.id, frame.task);
      this._renderTasks(isNew ? frame.task.id : null);
    }

    _onTaskDeleted(frame) {
      this.tasks.delete(frame.task.id);
      this._renderTasks();
    }

    _onConversationDeleted(frame) {
      this.conversations = this.conversations.filter((c) => c.id !== frame.conversation_id);
      this._renderConversations();
      if (this.conversationId === frame.conversation_id) this._selectConversation(null, {});
    }

    _onError(frame) {
      const entry = frame.ref ? this.outbox.find((e) => e.client_msg_id === frame.ref) : null;
      if (entry) {
        if (this.inflight === entry.client_msg_id) {
          this.inflight = null;
          clearTimeout(this.ackTimer);
        }
        if (frame.code === "busy" || frame.code === "rate_limited") {
          // A turn runs there, or the user's message budget is spent: try again when the server says.
          const wait = frame.retry_after ? frame.retry_after * 1000 : BUSY_RETRY_MS;
          entry.retryAt = Date.now() + wait;
          this._flushOutbox();
          return;
        }
        // Refused for good (invalid, too long, conversation gone): say so next to the message.
        this.outbox = this.outbox.filter((e) => e !== entry);
        this._saveOutbox();
        const pending = this.viewEls.get(`c:${entry.client_msg_id}`);
        if (pending) {
          pending.classList.remove("pending");
          pending.classList.add("failed");
          delete pending.dataset.pending;
          const meta = pending.querySelector(".meta");
          meta.hidden = false;
          meta.textContent = `Not sent: ${frame.detail}`;
        }
        this._flushOutbox();
        return;
      }
      if (frame.code === "not_found" && this.turns.size) {
        for (const turn of this.turns.values()) turn.cancelling = false;
        this._renderComposer();
      }
      this._notice(frame.detail || frame.code);
    }

    // --- conversations and history -----------------------------------------------------------

    _sortConversations() {
      this.conversations.sort((a, b) => {
        const ta = parseTime(a.updated_at);
        const tb = parseTime(b.updated_at);
        return (tb ? tb.getTime() : 0) - (ta ? ta.getTime() : 0) || b.id - a.id;
      });
    }

    _refreshConversationsSoon() {
      clearTimeout(this.convTimer);
      this.convTimer = setTimeout(async () => {
        try {
          const convs = await this._api("GET", "/conversations?limit=50");
          const known = new Map(this.conversations.map((c) => [c.id, c]));
          this.conversations = convs.data.map((c) => ({
            ...c,
            unread: known.has(c.id) ? known.get(c.id).unread : c.id !== this.conversationId,
          }));
          this._renderConversations();
        } catch (_) {
          /* the next event or reload tries again */
        }
      }, 150);
    }

    async _selectConversation(id, { focus = false } = {}) {
      storage.set("conversation", id);
      try {
        await this._loadConversation(id, { keepDraft: false });
      } catch (error) {
        if (error.status !== 401) this._notice(`Could not load the conversation: ${error.message}`);
      }
      if (focus) this.el.input.focus();
    }

    async _loadConversation(id, { keepDraft }) {
      const changed = id !== this.conversationId;
      this.conversationId = id;
      if (id === null && (changed || !keepDraft)) this.draftKey = this._newDraft();
      const conversation = this.conversations.find((c) => c.id === id);
      if (conversation) conversation.unread = false;
      this._renderConversations();
      this._clearLog();
      this.el.empty.hidden = true; // not "empty" while its history is on the way
      if (id !== null) {
        const page = await this._api("GET", `/conversations/${id}/messages?limit=${PAGE_SIZE}`);
        if (this.conversationId !== id) return;
        this._clearLog();
        this.hasMore = page.has_more;
        this.oldestId = page.data.length ? page.data[0].id : null;
        for (const message of page.data) this._upsertMessage(message);
      }
      for (const entry of this.outbox) {
        if (this._entryInView(entry)) this._pendingBubble(entry);
      }
      for (const [turnId, turn] of this.turns) {
        if (turn.conversationId !== id || this._hasReply(turnId)) continue;
        this._streamBubble(turnId);
        for (const callId of turn.tools.keys()) this._renderTool(turnId, callId);
        this._renderStream(turnId);
      }
      this.el.loadEarlier.hidden = !this.hasMore;
      this._renderEmpty();
      this._renderComposer();
      this._renderChoices();
      this._refreshPendingLabels();
      this._scrollToEnd();
    }

    async _loadEarlier() {
      const id = this.conversationId;
      if (id === null || this.oldestId === null) return;
      this.el.loadEarlier.disabled = true;
      try {
        const page = await this._api("GET", `/conversations/${id}/messages?limit=${PAGE_SIZE}&before=${this.oldestId}`);
        if (this.conversationId !== id) return;
        const scroller = this.el.scroller;
        const fromBottom = scroller.scrollHeight - scroller.scrollTop;
        for (const message of page.data) this._upsertMessage(message);
        if (page.data.length) this.oldestId = page.data[0].id;
        this.hasMore = page.has_more;
        this.el.loadEarlier.hidden = !this.hasMore;
        scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the reader's place
      } catch (error) {
        this._notice(`Could not load earlier messages: ${error.message}`);
      } finally {
        this.el.loadEarlier.disabled = false;
      }
    }

    // --- sending ------------------------------------------------------------------------------

    _submitMessage(raw) {
      const text = String(raw || "");
      if (!text.trim() || !this.session) return;
      if (text.length > MAX_MESSAGE_CHARS) {
        this._notice(`Messages are limited to ${MAX_MESSAGE_CHARS.toLocaleString()} characters.`);
        return;
      }
      const entry = {
        client_msg_id: randomId("w-"), // made once: every retry of this message reuses it
        conversation_id: this.conversationId,
        draft: this.conversationId === null ? this.draftKey : null,
        message: text,
        userId: this.session.userId,
      };
      this.outbox.push(entry);
      this._saveOutbox();
      this.el.input.value = "";
      this._autosize();
      this._pendingBubble(entry);
      this._renderEmpty();
      this._renderChoices();
      this._scrollToEnd();
      this.el.input.focus();
      this._flushOutbox();
      this._refreshPendingLabels();
    }

    _saveOutbox() {
      storage.set("outbox", this.outbox);
    }

    _entryInView(entry) {
      if (entry.conversation_id !== null) return entry.conversation_id === this.conversationId;
      return this.conversationId === null && entry.draft === this.draftKey;
    }

    _runningIn(conversationId) {
      for (const [turnId, turn] of this.turns) if (turn.conversationId === conversationId) return turnId;
      return null;
    }

    /** Send the oldest sendable message; one at a time, each acked before the next goes out. */
    _flushOutbox() {
      clearTimeout(this.flushTimer);
      if (!this.session || !this.conn.online || this.inflight || this.reloading) return;
      const now = Date.now();
      const blocked = new Set();
      let wakeAt = null;
      for (const entry of this.outbox) {
        if (entry.userId !== this.session.userId) continue;
        const lane = entry.conversation_id !== null ? `c${entry.conversation_id}` : `d${entry.draft}`;
        if (blocked.has(lane)) continue; // keep each conversation's messages in order
        if (entry.conversation_id !== null && this._runningIn(entry.conversation_id)) {
          blocked.add(lane); // one turn at a time per conversation: wait for its turn.end
          continue;
        }
        if (entry.retryAt && entry.retryAt > now) {
          blocked.add(lane);
          wakeAt = Math.min(wakeAt === null ? entry.retryAt : wakeAt, entry.retryAt);
          continue;
        }
        const sent = this.conn.send({
          type: "chat",
          conversation_id: entry.conversation_id,
          message: entry.message,
          client_msg_id: entry.client_msg_id,
        });
        if (!sent) return;
        this.inflight = entry.client_msg_id;
        // No ack in time: send it again. The server answers a repeated id with the same ack.
        this.ackTimer = setTimeout(() => {
          this.inflight = null;
          this._flushOutbox();
        }, ACK_TIMEOUT_MS);
        this._refreshPendingLabels();
        return;
      }
      if (wakeAt !== null) this.flushTimer = setTimeout(() => this._flushOutbox(), wakeAt - now);
    }

    _cancelTurn() {
      const turnId = this._runningIn(this.conversationId);
      if (!turnId) return;
      if (this.conn.send({ type: "cancel", turn_id: turnId })) {
        this.turns.get(turnId).cancelling = true;
        this._renderComposer();
      } else {
        this._notice("Offline: the reply cannot be stopped until the connection is back.");
      }
    }

    async _toggleTask(taskId, checkbox) {
      // Not `disabled`: that would take keyboard focus away from the checkbox.
      checkbox.setAttribute("aria-busy", "true");
      try {
        const task = await this._api("PATCH", `/tasks/${taskId}/complete`);
        this.tasks.set(task.id, task);
      } catch (error) {
        this._notice(`Could not update the task: ${error.message}`);
      } finally {
        checkbox.removeAttribute("aria-busy");
        this._renderTasks(); // the server's answer decides the state shown
      }
    }

    // --- rendering: the message log ----------------------------------------------------------

    _clearLog() {
      this.viewEls.clear();
      this.el.log.replaceChildren();
      this.hasMore = false;
      this.oldestId = null;
      this.el.loadEarlier.hidden = true;
    }

    _hasReply(turnId) {
      for (const element of this.el.log.children) {
        if (element.dataset.turn === turnId && element.dataset.role === "assistant" && element.dataset.id) return true;
      }
      return false;
    }

    /** Put a persisted element in id order; pending messages stay last. */
    _place(element, id) {
      for (const child of this.el.log.children) {
        if (child === element) continue;
        const childId = child.dataset.id ? Number(child.dataset.id) : null;
        if ((childId !== null && childId > id) || child.dataset.pending === "true") {
          this.el.log.insertBefore(element, child);
          return;
        }
      }
      this.el.log.append(element);
    }

    _messageElement(role) {
      const element = document.createElement("div");
      element.className = `msg ${role}`;
      element.dataset.role = role;
      const who = document.createElement("span");
      who.className = "sr-only";
      who.textContent = role === "user" ? "You said: " : "Assistant: ";
      const bubble = document.createElement("div");
      bubble.className = "bubble";
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.hidden = true;
      element.append(who, bubble, meta);
      return element;
    }

    _upsertMessage(message) {
      if (message.role === "tool") {
        if (message.tool_call) this._historyTool(message);
        return;
      }
      if (message.id < (this.oldestId === null ? Infinity : this.oldestId)) this.oldestId = message.id;
      let element = this.viewEls.get(`m:${message.id}`);
      const stream = message.turn_id ? this.viewEls.get(`s:${message.turn_id}`) : null;
      if (message.role === "assistant" && stream) {
        this.viewEls.delete(`s:${message.turn_id}`);
        if (element) stream.remove();
        else element = stream; // the streamed bubble becomes the final message, in place
      }
      if (!element) {
        element = this._messageElement(message.role);
      }
      this.viewEls.set(`m:${message.id}`, element);
      element.dataset.id = String(message.id);
      if (message.turn_id) element.dataset.turn = message.turn_id;
      element.classList.remove("streaming", "pending");
      delete element.dataset.pending;
      element.querySelector(".bubble").removeAttribute("aria-busy");
      const time = parseTime(message.created_at);
      if (time) element.title = time.toLocaleString();
      if (message.role === "assistant") {
        this._finishBubble(element, message);
      } else {
        element.querySelector(".bubble").textContent = message.content;
      }
      this._place(element, message.id);
    }

    _finishBubble(element, message, reason) {
      const bubble = element.querySelector(".bubble");
      const meta = element.querySelector(".meta");
      element.classList.remove("streaming");
      bubble.removeAttribute("aria-busy");
      const notes = { cancelled: "Stopped", failed: reason ? `Failed: ${reason}` : "The reply failed" };
      const note = notes[message.status] || "";
      bubble.textContent = message.content || (note ? "\u2026" : "");
      meta.textContent = note;
      meta.hidden = !note;
      meta.classList.toggle("bad", message.status === "failed");
    }

    _streamBubble(turnId) {
      let element = this.viewEls.get(`s:${turnId}`);
      if (element) return element;
      element = this._messageElement("assistant");
      element.classList.add("streaming");
      element.dataset.turn = turnId;
      const bubble = element.querySelector(".bubble");
      bubble.setAttribute("aria-busy", "true"); // read it once it is complete, not chunk by chunk
      this.viewEls.set(`s:${turnId}`, element);
      this._place(element, Infinity);
      this._renderStream(turnId);
      return element;
    }

    _renderStream(turnId) {
      const turn = this.turns.get(turnId);
      const element = this.viewEls.get(`s:${turnId}`);
      if (!turn || !element) return;
      const bubble = element.querySelector(".bubble");
      if (turn.text.length === 0) {
        if (!bubble.querySelector(".typing")) {
          const dots = document.createElement("span");
          dots.className = "typing";
          dots.setAttribute("aria-label", "The assistant is typing");
          dots.append(document.createElement("i"), document.createElement("i"), document.createElement("i"));
          bubble.replaceChildren(dots);
        }
        return;
      }
      bubble.textContent = turn.text.join("") + (turn.gap ? " \u2026" : "");
    }

    _toolElement(key) {
      let element = this.viewEls.get(key);
      if (element) return element;
      element = document.createElement("div");
      element.className = "tool";
      const icon = document.createElement("span");
      icon.className = "tool-icon";
      icon.setAttribute("aria-hidden", "true");
      const text = document.createElement("span");
      text.className = "tool-text";
      element.append(icon, text);
      this.viewEls.set(key, element);
      return element;
    }

    _paintTool(element, name, args, result, done) {
      const line = describeTool(name, args, result, done);
      element.className = `tool ${line.kind}`;
      element.querySelector(".tool-icon").textContent = { ok: "\u2713", error: "!", pending: "\u2026" }[line.kind];
      element.querySelector(".tool-text").textContent = line.text;
    }

    _renderTool(turnId, callId) {
      const call = this.turns.get(turnId) && this.turns.get(turnId).tools.get(callId);
      if (!call) return;
      const key = `tool:${turnId}:${callId}`;
      const fresh = !this.viewEls.has(key);
      const element = this._toolElement(key);
      this._paintTool(element, call.name, call.arguments, call.result, call.done);
      if (fresh) {
        const stream = this.viewEls.get(`s:${turnId}`);
        if (stream) this.el.log.insertBefore(element, stream);
        else this._place(element, Infinity);
      }
    }

    _historyTool(message) {
      const record = message.tool_call;
      const key = `tool:${message.turn_id}:${record.id}`;
      const element = this._toolElement(key);
      element.dataset.id = String(message.id);
      this._paintTool(element, record.name, record.arguments, record.result, true);
      this._place(element, message.id);
    }

    _pendingBubble(entry) {
      const key = `c:${entry.client_msg_id}`;
      if (this.viewEls.has(key)) return;
      const element = this._messageElement("user");
      element.classList.add("pending");
      element.dataset.pending = "true";
      element.dataset.clientId = entry.client_msg_id;
      element.querySelector(".bubble").textContent = entry.message;
      this.viewEls.set(key, element);
      this.el.log.append(element);
      this._refreshPendingLabels();
    }

    _refreshPendingLabels() {
      for (const entry of this.outbox) {
        const element = this.viewEls.get(`c:${entry.client_msg_id}`);
        if (!element) continue;
        let label = "Sending\u2026";
        if (!this.conn.online) label = "Queued: sends when back online";
        else if (entry.conversation_id !== null && this._runningIn(entry.conversation_id)) {
          label = "Waiting for the current reply\u2026";
        }
        const meta = element.querySelector(".meta");
        meta.hidden = false;
        meta.textContent = label;
      }
    }

    _renderEmpty() {
      const hasContent = this.el.log.children.length > 0;
      this.el.empty.hidden = hasContent || !this.session;
    }

    _renderComposer() {
      const turnId = this.session ? this._runningIn(this.conversationId) : null;
      const turn = turnId ? this.turns.get(turnId) : null;
      const stop = this.el.stop;
      stop.hidden = !turn;
      stop.disabled = Boolean(turn && turn.cancelling);
      stop.querySelector("span").textContent = turn && turn.cancelling ? "Stopping\u2026" : "Stop";
      stop.setAttribute("aria-label", turn && turn.cancelling ? "Stopping the reply" : "Stop the reply");
    }

    _renderChoices() {
      const box = this.el.choices;
      const choices = this._currentChoices();
      box.replaceChildren();
      box.hidden = choices.length === 0;
      for (const choice of choices) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "chip choice";
        button.textContent = choice.label;
        button.addEventListener("click", () => this._submitMessage(`task ${choice.id}`));
        box.append(button);
      }
    }

    _currentChoices() {
      if (!this.session || this._runningIn(this.conversationId)) return [];
      if (this.outbox.some((entry) => this._entryInView(entry))) return [];
      const children = Array.from(this.el.log.children).filter((child) => child.dataset.role);
      const last = children[children.length - 1];
      if (!last || last.dataset.role !== "assistant" || !last.dataset.id) return [];
      return parseChoices(last.querySelector(".bubble").textContent);
    }

    _withScroll(mutate) {
      const scroller = this.el.scroller;
      const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
      mutate();
      this._renderEmpty();
      if (atEnd) this._scrollToEnd();
    }

    _scrollToEnd() {
      this.el.scroller.scrollTop = this.el.scroller.scrollHeight;
    }

    // --- rendering: sidebar -------------------------------------------------------------------

    _renderConversations() {
      this.el.convEmpty.hidden = this.conversations.length > 0;
      reconcile(
        this.el.convList,
        this.conversations,
        (conversation) => conversation.id,
        (conversation) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.className = "conv";
          const title = document.createElement("span");
          title.className = "conv-title";
          const dot = document.createElement("span");
          dot.className = "unread";
          dot.setAttribute("role", "img");
          dot.setAttribute("aria-label", "new messages");
          const time = document.createElement("span");
          time.className = "conv-time";
          button.append(title, dot, time);
          button.addEventListener("click", () => {
            this._setDrawer(false);
            this._selectConversation(conversation.id, { focus: true });
          });
          item.append(button);
          return item;
        },
        (item, conversation) => {
          const button = item.firstChild;
          button.querySelector(".conv-title").textContent = conversation.title;
          button.title = conversation.title;
          button.querySelector(".conv-time").textContent = shortTime(conversation.updated_at);
          button.querySelector(".unread").hidden = !conversation.unread;
          if (conversation.id === this.conversationId) button.setAttribute("aria-current", "true");
          else button.removeAttribute("aria-current");
        },
      );
    }

    _renderTasks(freshId = null) {
      const tasks = Array.from(this.tasks.values()).sort((a, b) => a.id - b.id);
      const done = tasks.filter((task) => task.completed).length;
      this.el.taskEmpty.hidden = tasks.length > 0;
      this.el.taskCount.textContent = tasks.length ? `${tasks.length - done} open \u00b7 ${done} done` : "";
      reconcile(
        this.el.taskList,
        tasks,
        (task) => task.id,
        (task) => {
          const item = document.createElement("li");
          item.className = "task";
          const box = document.createElement("input");
          box.type = "checkbox";
          box.id = `tc-task-${task.id}`;
          const label = document.createElement("label");
          label.htmlFor = box.id;
          const title = document.createElement("span");
          title.className = "task-title";
          const desc = document.createElement("span");
          desc.className = "task-desc";
          label.append(title, desc);
          const ref = document.createElement("span");
          ref.className = "task-id";
          ref.setAttribute("aria-hidden", "true");
          ref.textContent = `#${task.id}`;
          box.addEventListener("click", (event) => {
            if (box.getAttribute("aria-busy") === "true") event.preventDefault(); // one toggle at a time
          });
          box.addEventListener("change", () => this._toggleTask(task.id, box));
          item.append(box, label, ref);
          return item;
        },
        (item, task) => {
          item.classList.toggle("done", task.completed);
          item.querySelector("input").checked = task.completed;
          item.querySelector(".task-title").textContent = task.title;
          const desc = item.querySelector(".task-desc");
          desc.textContent = task.description || "";
          desc.hidden = !task.description;
          if (task.id === freshId) {
            item.classList.remove("fresh");
            void item.offsetWidth; // restart the highlight animation
            item.classList.add("fresh");
          }
        },
      );
    }
  }

  /** Keyed update of a list: reuses elements (and so keeps focus and state), adds and removes the rest. */
  function reconcile(container, items, keyOf, create, update) {
    const existing = new Map();
    for (const child of container.children) existing.set(child.dataset.key, child);
    let previous = null;
    for (const item of items) {
      const key = String(keyOf(item));
      let element = existing.get(key);
      if (element) existing.delete(key);
      else {
        element = create(item);
        element.dataset.key = key;
      }
      update(element, item);
      const next = previous ? previous.nextSibling : container.firstChild;
      if (next !== element) container.insertBefore(element, next);
      previous = element;
    }
    for (const element of existing.values()) element.remove();
  }

  const widget = new Widget();
  widget.mount();
  window.TodoChat = Object.freeze({
    version: "1",
    open: () => widget._setOpen(true),
    close: () => widget._setOpen(false),
    toggle: () => widget._setOpen(widget.el.panel.hidden),
  });
})();

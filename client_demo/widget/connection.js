// @ts-check
/* The chat socket (docs/protocol.md): one WebSocket at a time, authenticated by its first frame,
 * resumed after the last seq seen, kept alive by pings, reconnected with jittered backoff (and at
 * once with a refreshed token after a 4401); and the sender that takes the outbox's messages out
 * over it, one at a time, until each is acked.
 */

/** @typedef {import("./protocol.js").ServerFrame} ServerFrame */
/** @typedef {import("./protocol.js").ClientFrame} ClientFrame */
/** @typedef {import("./outbox.js").Outbox} Outbox */

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 10000;
export const PING_EVERY_MS = 25000; // under the server's idle timeout (WS_IDLE_TIMEOUT, 300 s by default)
export const HANDSHAKE_TIMEOUT_MS = 10000;
export const ACK_TIMEOUT_MS = 10000;
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_TOO_MANY = 4429;

/** @typedef {"connecting" | "online" | "reconnecting" | "offline"} ConnectionState */
/** @typedef {"reconnect" | "backoff" | "stop"} AuthRetry  after a 4401: at once, after the backoff, or not at all */

/**
 * @typedef {object} ConnectionHooks
 * @property {() => ClientFrame} authFrame  the first frame of each socket (token, and `after_seq` to resume)
 * @property {(frame: ServerFrame) => void} onFrame  every frame, `hello` and `pong` included
 * @property {(state: ConnectionState, detail: string) => void} onState  detail "too-many": close 4429
 * @property {(reason: string) => Promise<AuthRetry>} onUnauthorized  closed with 4401: refresh, say how to go on
 * @property {(reason: string) => void} onAuthFailed  4401 again, with a just-refreshed token: the session is gone
 */

/** One socket at a time: authenticates with a first frame, pings, reconnects with jittered backoff. */
export class Connection {
  /** @type {WebSocket | null} */
  ws = null;
  /** @type {ConnectionState} */
  state = "offline";
  running = false;
  authed = false;
  everOnline = false;
  attempt = 0;
  awaitingPong = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  retryTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  handshakeTimer = undefined;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  pingTimer = undefined;
  /** Counts start() and stop(): a refresh that outlives its run changes nothing. */
  #run = 0;
  /** A 4401 is being answered with a refresh: nothing reconnects meanwhile. */
  #refreshing = false;
  /** The socket was opened with a token refreshed after a 4401, and has not reached `hello`. */
  #afterRefresh = false;

  /**
   * @param {string} url  the chat socket's URL
   * @param {ConnectionHooks} hooks
   */
  constructor(url, hooks) {
    this.url = url;
    this.hooks = hooks;
  }

  get online() {
    return this.authed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.#run += 1;
    this.everOnline = false;
    this.attempt = 0;
    this.#afterRefresh = false;
    this.#connect();
  }

  stop() {
    this.running = false;
    this.#run += 1;
    this.#clearTimers();
    this.#detach(1000, "logged out");
    this.#setState("offline");
  }

  /**
   * @param {ClientFrame} frame
   * @returns {boolean} false when offline (nothing was sent)
   */
  send(frame) {
    if (!this.online || this.ws === null) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** The browser says the network is back: skip the rest of the backoff. */
  retryNow() {
    if (!this.running || this.ws !== null || this.#refreshing) return;
    this.attempt = 0;
    this.#connect();
  }

  wentOffline() {
    if (this.running && !this.online) this.#setState("offline");
  }

  #connect() {
    this.#clearTimers();
    if (navigator.onLine === false) {
      this.#setState("offline"); // the window's "online" event calls retryNow()
      return;
    }
    this.#setState(this.everOnline || this.attempt > 0 ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (_) {
      this.#scheduleRetry(0);
      return;
    }
    this.ws = ws;
    this.authed = false;
    this.handshakeTimer = setTimeout(() => this.#drop(), HANDSHAKE_TIMEOUT_MS);
    // Browsers cannot set headers on a WebSocket: the token goes in the first frame.
    ws.onopen = () => ws.send(JSON.stringify(this.hooks.authFrame()));
    ws.onmessage = (event) => this.#onMessage(ws, event);
    ws.onclose = (event) => this.#onClose(ws, event);
  }

  /**
   * @param {WebSocket} ws
   * @param {MessageEvent} event
   */
  #onMessage(ws, event) {
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
      this.#afterRefresh = false;
      this.everOnline = true;
      this.attempt = 0;
      this.#startPing();
      this.#setState("online");
    } else if (frame.type === "pong") {
      this.awaitingPong = false;
    }
    this.hooks.onFrame(frame);
  }

  /**
   * @param {WebSocket} ws
   * @param {CloseEvent} event
   */
  #onClose(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.authed = false;
    this.#clearTimers();
    if (!this.running) return;
    if (event.code === CLOSE_UNAUTHENTICATED) {
      void this.#unauthenticated(event.reason);
      return;
    }
    this.#scheduleRetry(event.code);
  }

  /**
   * Closed with 4401: the token ran out, or its session ended. A refresh tells which. A socket
   * opened with the refreshed token and refused again before `hello` means the session is gone.
   * @param {string} reason  the close frame's ("token expired", "session ended", ...)
   */
  async #unauthenticated(reason) {
    if (this.#afterRefresh) {
      this.#giveUp();
      this.hooks.onAuthFailed(reason);
      return;
    }
    const run = this.#run;
    this.#setState("reconnecting");
    this.#refreshing = true;
    /** @type {AuthRetry} */
    let next = "stop";
    try {
      next = await this.hooks.onUnauthorized(reason);
    } finally {
      this.#refreshing = false;
    }
    if (run !== this.#run || !this.running) return; // logged out (or in again) meanwhile
    if (next === "reconnect") {
      this.#afterRefresh = true;
      this.attempt = 0;
      this.#connect(); // at once: nothing is wrong with the network
    } else if (next === "backoff") {
      this.#scheduleRetry(CLOSE_UNAUTHENTICATED); // the server could not be asked: try again later
    } else {
      this.#giveUp();
    }
  }

  #giveUp() {
    this.running = false;
    this.#afterRefresh = false;
    this.#setState("offline");
  }

  /** A stuck socket (no hello, no pong): abandon it without waiting for a closing handshake. */
  #drop() {
    this.#detach(4000, "unresponsive");
    if (this.running) this.#scheduleRetry(0);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  #detach(code, reason) {
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

  /** @param {number} code  the close code that ended the last socket (0: none) */
  #scheduleRetry(code) {
    this.#clearTimers();
    this.#afterRefresh = false; // lost for another reason: the next 4401 is answered with a refresh again
    if (navigator.onLine === false) {
      this.#setState("offline");
      return;
    }
    this.#setState("reconnecting", code === CLOSE_TOO_MANY ? "too-many" : "");
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    this.attempt += 1;
    // "Equal jitter": a server restart must not bring every client back in the same instant.
    const delay = code === CLOSE_TOO_MANY ? BACKOFF_CAP_MS : ceiling / 2 + (Math.random() * ceiling) / 2;
    this.retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #startPing() {
    clearInterval(this.pingTimer);
    this.awaitingPong = false;
    this.pingTimer = setInterval(() => {
      if (this.awaitingPong) {
        this.#drop(); // the last ping went unanswered for a whole interval
        return;
      }
      this.awaitingPong = true;
      this.send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  #clearTimers() {
    clearTimeout(this.retryTimer);
    clearTimeout(this.handshakeTimer);
    clearInterval(this.pingTimer);
  }

  /**
   * @param {ConnectionState} state
   * @param {string} [detail]
   */
  #setState(state, detail = "") {
    if (state === this.state && !detail) return;
    this.state = state;
    this.hooks.onState(state, detail);
  }
}

/**
 * @typedef {object} SenderContext
 * @property {() => number | null} userId  whose messages may go (null: nobody is logged in)
 * @property {() => boolean} paused  true while the state is reloading from REST
 * @property {(conversationId: number) => boolean} busy  a turn runs in that conversation
 * @property {() => void} onSent
 */

/** Takes the outbox's messages out, the oldest sendable first, each acked before the next goes. */
export class OutboxSender {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #ackTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #wakeTimer = undefined;

  /**
   * @param {Connection} connection
   * @param {Outbox} outbox
   * @param {SenderContext} context
   */
  constructor(connection, outbox, context) {
    this.connection = connection;
    this.outbox = outbox;
    this.context = context;
  }

  /** Send what may go now; call again whenever that may have changed (ack, turn.end, online). */
  flush() {
    clearTimeout(this.#wakeTimer);
    const userId = this.context.userId();
    if (userId === null || !this.connection.online || this.context.paused()) return;
    const now = Date.now();
    const { entry, wakeAt } = this.outbox.next({ userId, now, busy: this.context.busy });
    if (entry === null) {
      if (wakeAt !== null) this.#wakeTimer = setTimeout(() => this.flush(), wakeAt - now);
      return;
    }
    const sent = this.connection.send({
      type: "chat",
      conversation_id: entry.conversation_id,
      message: entry.message,
      client_msg_id: entry.client_msg_id,
    });
    if (!sent) return;
    this.outbox.sent(entry);
    // No ack in time: send it again. The server answers a repeated id with the same ack.
    this.#ackTimer = setTimeout(() => {
      this.outbox.timedOut();
      this.flush();
    }, ACK_TIMEOUT_MS);
    this.context.onSent();
  }

  /** The message in flight was acked or refused: its ack timer has nothing left to do. */
  settled() {
    if (this.outbox.inflight === null) clearTimeout(this.#ackTimer);
  }

  reset() {
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#wakeTimer);
  }
}

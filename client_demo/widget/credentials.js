// @ts-check
/* A logged-in tab's tokens (docs/sessions.md): a short-lived access token, kept fresh with the
 * session's rotating refresh token, and shared with the browser's other tabs of the same session.
 *
 * The server rotates refresh tokens: each works once, and a used one presented again more than
 * REFRESH_LEEWAY_SECONDS (10) after its rotation ends the whole session, as a stolen copy would.
 * A duplicated tab copies sessionStorage, so two tabs may hold the same refresh token, and a
 * throttled background tab presenting it late would end the session for both. So a tab refreshes
 * only while holding the session's Web Lock, posts the new tokens on a BroadcastChannel, and the
 * tabs of the same session adopt them instead of refreshing again. No DOM here: `node --test`
 * runs it with stand-ins for the lock, the clock and the timers.
 */

import { errorMessage, errorStatus } from "./api.js";

/** @typedef {import("./protocol.js").Session} Session */
/** @typedef {import("./protocol.js").AuthBody} AuthBody */

export const REST_MARGIN_MS = 10000; // a REST call goes out with at least this long left, or refreshes first
export const REFRESH_MARGIN_CAP_MS = 60000; // refresh a minute before expiry (or a fifth of the lifetime)
export const PEER_WAIT_MS = 3000; // "already used": how long another tab's new tokens may take to arrive
export const PEER_ANSWER_MS = 500; // how long the other tabs of the session may take to say which tokens they hold
export const LOCK_WAIT_MS = 20000; // another tab's refresh that takes longer than this is not waited for
export const RETRY_BASE_MS = 1000;
export const RETRY_CAP_MS = 30000;
const MAX_TIMER_MS = 3600000; // timers longer than this are re-armed (setTimeout's range is 2^31 ms)
export const ALREADY_USED = "Refresh token already used"; // the server's detail: another tab refreshed first

/**
 * How a refresh ended: new tokens are in place ("ok"), the session is gone ("ended", and the
 * tab has been told through `onEnded`), or the server could not be asked ("unavailable": the
 * tokens are kept and the refresh is retried with backoff).
 * @typedef {"ok" | "ended" | "unavailable"} RefreshOutcome
 */

/**
 * What the tab does with its tokens; session-controller.js implements these.
 * @typedef {object} CredentialHooks
 * @property {(refreshToken: string) => Promise<AuthBody>} exchange  POST /api/auth/refresh
 * @property {(session: Session) => void} save  keep the tokens (sessionStorage)
 * @property {(session: Session) => void} onTokens  new tokens, already saved: hand them to the socket
 * @property {(reason: string) => void} onEnded  the session is gone (the server's reason): sign out
 */

/**
 * The part of navigator.locks used here.
 * @typedef {{ request: (name: string, options: { signal?: AbortSignal }, callback: () => Promise<RefreshOutcome>)
 *   => Promise<RefreshOutcome> }} Locks
 */

/**
 * The part of a BroadcastChannel used here.
 * @typedef {object} Channel
 * @property {(message: PeerMessage) => void} postMessage
 * @property {((event: MessageEvent) => void) | null} onmessage
 * @property {() => void} close
 */

/**
 * What tabs tell each other: a session's tokens (new ones, or the answer `re` an `ask`), or a
 * question for them.
 * @typedef {{ type: "tokens", session: Session, re?: string }
 *   | { type: "ask", sessionId: string, id: string }} PeerMessage
 */

/**
 * @typedef {object} Environment  the browser's parts; tests pass stand-ins
 * @property {string} server  the backend, which names the lock and the channel
 * @property {Locks | null} [locks]  null: no Web Locks (an insecure context); refreshes are then per tab
 * @property {Channel | null} [channel]  null: no other tab hears of new tokens
 * @property {() => number} [now]  epoch ms
 * @property {(callback: () => void, ms: number) => unknown} [setTimer]
 * @property {(timer: unknown) => void} [clearTimer]
 */

/**
 * How long before expiry a token is refreshed: a minute, or a fifth of its lifetime if that is shorter.
 * @param {number} lifetimeMs
 */
export function refreshMargin(lifetimeMs) {
  return Math.min(REFRESH_MARGIN_CAP_MS, Math.max(0, lifetimeMs) / 5);
}

/**
 * `iat` and `exp` of a JWT (seconds, the server's clock), read without verifying it: they only
 * time the refresh. Null for anything that is not a JWT with both.
 * @param {string} token
 * @returns {{ issuedAt: number, expiresAt: number } | null}
 */
export function tokenTimes(token) {
  try {
    const payload = String(token).split(".")[1] || "";
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(base64.padEnd(Math.ceil(base64.length / 4) * 4, "=")));
    if (typeof claims.iat === "number" && typeof claims.exp === "number") {
      return { issuedAt: claims.iat, expiresAt: claims.exp };
    }
  } catch (_) {
    /* not a JWT */
  }
  return null;
}

/**
 * The tab's record of a session, from a signup, login or refresh answer.
 * @param {AuthBody} body
 * @param {number} now  epoch ms when the answer arrived
 * @returns {Session}
 */
export function sessionFromAuth(body, now) {
  return {
    token: body.token,
    refreshToken: body.refresh_token,
    expiresAt: now + body.expires_in * 1000,
    sessionId: body.session_id,
    userId: body.id,
    email: body.email,
  };
}

/**
 * @param {unknown} value
 * @returns {value is Session}
 */
function isSession(value) {
  if (!value || typeof value !== "object") return false;
  const session = /** @type {Record<string, unknown>} */ (value);
  return (
    typeof session.token === "string" &&
    typeof session.refreshToken === "string" &&
    typeof session.expiresAt === "number" &&
    typeof session.sessionId === "string"
  );
}

/** A tab's tokens of one session: refreshed once at a time in the whole browser, on time, and shared. */
export class Credentials {
  /** @type {Session} */
  #session;
  /** @type {Promise<RefreshOutcome> | null} the refresh under way, which every caller shares */
  #inflight = null;
  /** The session is gone, or this tab logged out: the refresh token is never presented again. */
  #done = false;
  #lifetimeMs = 0;
  /** How far the server's clock is ahead of ours (ms), so that its `expires_at` times our timers. */
  #serverAhead = 0;
  /** @type {number | null} when the socket's token runs out (our clock), from `hello` and `auth.refreshed` */
  #socketExpiresAt = null;
  #retries = 0;
  #retryAt = 0;
  /** @type {unknown} */
  #timer = undefined;
  /** Another tab of this session has spoken on the channel: refreshes ask it first. */
  #peers = false;
  /** Until then (epoch ms) the answers to start()'s question may still be on their way. */
  #peersUnknownUntil = 0;
  /** @type {Set<(final: boolean, re: string) => void>} refreshes waiting for another tab's tokens */
  #waiting = new Set();

  /**
   * @param {Session} session  as stored, or from sessionFromAuth()
   * @param {CredentialHooks} hooks
   * @param {Environment} environment
   */
  constructor(session, hooks, environment) {
    this.hooks = hooks;
    this.lockName = `todo-chat-refresh:${environment.server}:${session.sessionId}`;
    this.locks = environment.locks || null;
    this.channel = environment.channel || null;
    this.now = environment.now || Date.now;
    this.setTimer = environment.setTimer || ((callback, ms) => setTimeout(callback, ms));
    this.clearTimer =
      environment.clearTimer || ((timer) => clearTimeout(/** @type {ReturnType<typeof setTimeout>} */ (timer)));
    this.#session = session;
    this.#learn(session);
    if (this.channel) this.channel.onmessage = (event) => this.#onPeer(event.data);
  }

  get session() {
    return this.#session;
  }

  get token() {
    return this.#session.token;
  }

  get userId() {
    return this.#session.userId;
  }

  get email() {
    return this.#session.email;
  }

  /** When the next refresh is due (epoch ms). */
  get refreshAt() {
    return this.#expiresAt() - refreshMargin(this.#lifetimeMs);
  }

  /** Start the timer; ask the session's other tabs for newer tokens (a reload may have missed them). */
  start() {
    this.#peersUnknownUntil = this.now() + PEER_ANSWER_MS;
    this.#ask();
    this.#schedule();
  }

  /** The tab logged out: no timer, no channel, and nothing saved from a refresh still under way. */
  close() {
    this.#done = true;
    this.clearTimer(this.#timer);
    this.#wake(true);
    if (this.channel) {
      this.channel.onmessage = null;
      this.channel.close();
    }
  }

  /**
   * New tokens for this session, refreshed once however many callers ask at the same moment.
   * @param {{ stale?: string }} [options]  `stale`: the access token that was refused; if the tab
   *   holds another one already, that is the answer and nothing is refreshed
   * @returns {Promise<RefreshOutcome>}
   */
  refresh({ stale } = {}) {
    if (this.#done) return Promise.resolve("ended");
    if (stale !== undefined && stale !== this.#session.token) return Promise.resolve("ok");
    if (this.#inflight === null) {
      this.#inflight = this.#refreshOnce().finally(() => {
        this.#inflight = null;
      });
    }
    return this.#inflight;
  }

  /**
   * The access token for a REST call: refreshed first if it has under REST_MARGIN_MS left.
   * @returns {Promise<string>}
   */
  async fresh() {
    if (this.#session.expiresAt - this.now() < REST_MARGIN_MS) await this.refresh({ stale: this.#session.token });
    return this.#session.token;
  }

  /**
   * The socket says when its token runs out (`hello`, `auth.refreshed`; unix seconds, the server's
   * clock), or null when there is no socket: the timer follows.
   * @param {number | null} expiresAt
   */
  socketExpiry(expiresAt) {
    this.#socketExpiresAt = typeof expiresAt === "number" ? expiresAt * 1000 - this.#serverAhead : null;
    this.#schedule();
  }

  /** Refresh now if it is due (timers of hidden tabs are throttled: visibility and `online` call this too). */
  check() {
    if (this.#done) return;
    const now = this.now();
    if (now < Math.max(this.refreshAt, this.#retryAt)) {
      this.#schedule();
    } else if (this.#session.expiresAt - refreshMargin(this.#lifetimeMs) > now) {
      // Only the socket's token is due: it authenticated before this tab's newest tokens came.
      this.#socketExpiresAt = null;
      this.#schedule();
      this.hooks.onTokens(this.#session);
    } else {
      void this.refresh();
    }
  }

  /** The network is back: skip what is left of a backoff. */
  retryNow() {
    this.#retryAt = 0;
    this.check();
  }

  // --- refreshing ------------------------------------------------------------------------------

  /** @returns {Promise<RefreshOutcome>} */
  async #refreshOnce() {
    const used = this.#session.refreshToken;
    if (!used) return this.#end(""); // stored by a version of the widget that had no refresh tokens
    /** @type {RefreshOutcome} */
    let outcome;
    try {
      outcome = await this.#locked(async () => {
        if (this.#done) return "ended";
        // Another tab refreshed while this one waited for the lock: its tokens, not a second refresh.
        if (this.#session.refreshToken !== used) return "ok";
        // A tab that refreshed just before this one got the lock has its new tokens by now, but
        // they may still be on their way here (the channel and the lock are not ordered): ask.
        const peers = this.#peers || this.now() < this.#peersUnknownUntil;
        if (peers && (await this.#tokensFromPeer(used, PEER_ANSWER_MS, { first: true }))) return "ok";
        return this.#exchange(used);
      });
    } catch (_) {
      outcome = this.#done ? "ended" : "unavailable"; // the lock was not granted in time
    }
    if (outcome === "unavailable") this.#backOff();
    return outcome;
  }

  /**
   * Run `critical` holding the session's lock: one refresh at a time in the whole browser.
   * @param {() => Promise<RefreshOutcome>} critical
   * @returns {Promise<RefreshOutcome>}
   */
  #locked(critical) {
    if (this.locks === null) return critical();
    return this.locks.request(this.lockName, { signal: AbortSignal.timeout(LOCK_WAIT_MS) }, critical);
  }

  /**
   * Present the refresh token, once.
   * @param {string} used
   * @returns {Promise<RefreshOutcome>}
   */
  async #exchange(used) {
    /** @type {AuthBody} */
    let body;
    try {
      body = await this.hooks.exchange(used);
    } catch (error) {
      if (this.#done) return "ended";
      if (errorStatus(error) !== 401) return "unavailable"; // no answer, 5xx, 429: the session may well be alive
      const reason = errorMessage(error);
      // Used within the leeway: another tab holding the same token refreshed a moment ago. Its
      // tokens are on the way; presenting this one again would (after the leeway) end the session.
      if (reason === ALREADY_USED && (await this.#tokensFromPeer(used, PEER_WAIT_MS))) return "ok";
      return this.#end(reason);
    }
    if (this.#done) return "ended"; // logged out meanwhile: these tokens are not kept
    // The same session is the same user: the id stays as the tab has it.
    const session = { ...sessionFromAuth(body, this.now()), userId: this.#session.userId };
    this.#install(session);
    this.#post({ type: "tokens", session });
    return "ok";
  }

  /**
   * Ask the other tabs for this session's tokens; true once ones newer than `used` are in place.
   * @param {string} used
   * @param {number} ms  how long to wait at most
   * @param {{ first?: boolean }} [options]  settle with the first answer to this question, whatever it holds
   * @returns {Promise<boolean>}
   */
  #tokensFromPeer(used, ms, { first = false } = {}) {
    if (this.channel === null) return Promise.resolve(false);
    return new Promise((resolve) => {
      const id = this.#ask();
      /** @param {boolean} final @param {string} re */
      const settle = (final, re) => {
        const newer = !this.#done && this.#session.refreshToken !== used;
        if (!newer && !final && !(first && re === id)) return;
        this.#waiting.delete(settle);
        this.clearTimer(timer);
        resolve(newer);
      };
      const timer = this.setTimer(() => settle(true, ""), ms);
      this.#waiting.add(settle);
    });
  }

  /** @returns {string} the question's id, which the answers carry */
  #ask() {
    const id = Math.random().toString(36).slice(2); // tells this tab's questions from other tabs'

    this.#post({ type: "ask", sessionId: this.#session.sessionId, id });
    return id;
  }

  /**
   * @param {boolean} final  nothing more will come
   * @param {string} [re]  the question a message answered
   */
  #wake(final, re = "") {
    for (const settle of [...this.#waiting]) settle(final, re);
  }

  /**
   * Use `session`'s tokens from now on: saved first, then the timer, then the socket.
   * @param {Session} session
   */
  #install(session) {
    this.#session = session;
    this.#learn(session);
    this.#socketExpiresAt = null; // until the socket confirms the new token (`auth.refreshed`)
    this.#retries = 0;
    this.#retryAt = 0;
    this.hooks.save(session);
    this.#schedule();
    this.hooks.onTokens(session);
  }

  /** @param {Session} session */
  #learn(session) {
    const times = tokenTimes(session.token);
    if (times) {
      this.#lifetimeMs = (times.expiresAt - times.issuedAt) * 1000;
      this.#serverAhead = times.expiresAt * 1000 - session.expiresAt;
    } else {
      this.#lifetimeMs = Math.max(0, session.expiresAt - this.now());
      this.#serverAhead = 0;
    }
  }

  /**
   * @param {string} reason
   * @returns {RefreshOutcome}
   */
  #end(reason) {
    if (this.#done) return "ended";
    this.#done = true;
    this.clearTimer(this.#timer);
    this.hooks.onEnded(reason);
    return "ended";
  }

  #backOff() {
    const ceiling = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** this.#retries);
    this.#retries += 1;
    this.#retryAt = this.now() + ceiling / 2 + (Math.random() * ceiling) / 2;
    this.#schedule();
  }

  #expiresAt() {
    const own = this.#session.expiresAt;
    return this.#socketExpiresAt === null ? own : Math.min(own, this.#socketExpiresAt);
  }

  #schedule() {
    this.clearTimer(this.#timer);
    if (this.#done) return;
    const delay = Math.max(this.refreshAt, this.#retryAt) - this.now();
    this.#timer = this.setTimer(() => this.check(), Math.min(MAX_TIMER_MS, Math.max(0, delay)));
  }

  // --- the other tabs --------------------------------------------------------------------------

  /** @param {PeerMessage} message */
  #post(message) {
    if (this.channel === null || this.#done) return;
    try {
      this.channel.postMessage(message);
    } catch (_) {
      /* closed */
    }
  }

  /** @param {unknown} data */
  #onPeer(data) {
    if (this.#done || !data || typeof data !== "object") return;
    /** @type {{ type?: unknown, sessionId?: unknown, session?: unknown, id?: unknown, re?: unknown }} */
    const message = data;
    const mine = this.#session;
    if (message.type === "ask" && message.sessionId === mine.sessionId) {
      this.#peers = true;
      this.#post({ type: "tokens", session: mine, re: String(message.id) });
    } else if (message.type === "tokens" && isSession(message.session)) {
      const theirs = message.session;
      if (theirs.sessionId !== mine.sessionId) return;
      this.#peers = true;
      // Only newer tokens; never older ones back (they are used up).
      if (theirs.refreshToken !== mine.refreshToken && theirs.expiresAt >= mine.expiresAt) {
        this.#install({ ...theirs, userId: mine.userId, email: mine.email });
      }
      this.#wake(false, typeof message.re === "string" ? message.re : "");
    }
  }
}

// @ts-check
/* Who is logged in on this tab: the login and signup form, the session's tokens (credentials.js)
 * and what the socket was given of them, the account's time zone, and logging out. Entering the
 * app and clearing it again are the composition's (widget.js), told through hooks.
 */

import { ApiError, errorMessage, errorStatus } from "./api.js";
import { Credentials, sessionFromAuth, tokenTimes } from "./credentials.js";
import { browserZone } from "./due.js";
import { sessionEndedNotice } from "./text.js";

/** @typedef {import("./protocol.js").Session} Session */
/** @typedef {import("./protocol.js").ClientFrame} ClientFrame */
/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./connection.js").AuthRetry} AuthRetry */
/** @typedef {import("./render.js").AuthMode} AuthMode */
/** @typedef {import("./api.js").UserApi} UserApi */

/** @type {(keyof import("./storage.js").Stored)[]} what a tab remembers of where its user was */
const FORMER_POSITIONS = ["seq", "conversation", "draft", "reminders"];

/**
 * What the rest of the widget does when the session changes.
 * @typedef {object} SessionHooks
 * @property {(options: { focus: boolean, signedUp: boolean }) => void} entered  a session started: show the app
 * @property {() => void} signedOut  the session is gone: clear what was shown
 * @property {() => number | null} lastSeq  where the event log stands (the socket's `after_seq`)
 * @property {(zone: string) => void} zoneChanged  the account's time zone, as the server has it
 */

/**
 * @typedef {object} SessionDeps
 * @property {import("./config.js").Config} config
 * @property {import("./api.js").Api} api
 * @property {import("./storage.js").Store} storage
 * @property {import("./render.js").View} view
 * @property {import("./connection.js").Connection} conn
 * @property {import("./outbox.js").Outbox} outbox
 * @property {SessionHooks} hooks
 */

export class SessionController {
  /** @param {SessionDeps} deps */
  constructor({ config, api, storage, view, conn, outbox, hooks }) {
    this.config = config;
    this.api = api;
    this.storage = storage;
    this.view = view;
    this.conn = conn;
    this.outbox = outbox;
    this.hooks = hooks;
    const stored = storage.get("session");
    /** @type {Credentials | null} who is logged in on this tab, and their tokens */
    this.credentials = stored ? this.#credentialsFor(stored) : null;
    /** @type {UserApi | null} */
    this.user = this.credentials ? api.forUser(this.credentials) : null;
    /** The access token the socket was last given (its `auth` frame, or `auth.refresh`). */
    this.socketToken = "";
    /** @type {AuthMode} */
    this.authMode = "login";
  }

  /**
   * The tokens of a session on this tab, refreshed on time and shared with its other tabs.
   * @param {Session} session
   */
  #credentialsFor(session) {
    const server = this.config.server;
    // Stored by an older version of the widget: no refresh token, and the token's own expiry.
    const times = typeof session.expiresAt === "number" ? null : tokenTimes(session.token);
    const expiresAt = times ? times.expiresAt * 1000 : Number(session.expiresAt) || 0;
    /** @type {Credentials} */
    const credentials = new Credentials(
      { ...session, refreshToken: session.refreshToken || "", expiresAt },
      {
        exchange: (refreshToken) => this.api.refresh(refreshToken),
        save: (fresh) => {
          if (this.credentials === credentials) this.storage.set("session", fresh);
        },
        onTokens: (fresh) => {
          if (this.credentials === credentials) this.#giveSocket(fresh.token);
        },
        onEnded: (reason) => {
          if (this.credentials === credentials) this.signOut({ expired: true, reason });
        },
      },
      {
        server,
        // Web Locks exist only in secure contexts (https, localhost); BroadcastChannel everywhere.
        locks: navigator.locks || null,
        channel: typeof BroadcastChannel === "function" ? new BroadcastChannel(`todo-chat:${server}`) : null,
      },
    );
    return credentials;
  }

  /**
   * The socket carries on with `token` (`auth.refresh`) instead of closing when its own runs out.
   * @param {string} token
   */
  #giveSocket(token) {
    // Not online: nothing to send; the next socket authenticates with the new token anyway.
    if (token !== this.socketToken && this.conn.send({ type: "auth.refresh", token })) this.socketToken = token;
  }

  /**
   * The socket was closed with 4401 ("token expired", "session ended", ...): a refresh decides.
   * @returns {Promise<AuthRetry>}
   */
  async onUnauthorized() {
    const credentials = this.credentials;
    if (!credentials) return "stop";
    const outcome = await credentials.refresh({ stale: this.socketToken });
    if (credentials !== this.credentials) return "stop";
    // "ended": the credentials have signed the tab out already, with the server's reason.
    return outcome === "ok" ? "reconnect" : outcome === "unavailable" ? "backoff" : "stop";
  }

  /** @returns {UserApi} */
  userApi() {
    if (!this.user) throw new ApiError(401, "unauthorized", "Not logged in");
    return this.user;
  }

  showAuth(message = "") {
    this.view.showAuth();
    this.setAuthMode(this.authMode);
    this.view.authError(message);
  }

  /** @param {AuthMode} mode */
  setAuthMode(mode) {
    this.authMode = mode;
    this.view.setAuthMode(mode);
  }

  async submitAuth() {
    const { email, password } = this.view.credentials();
    if (!email || !password) {
      this.view.authError("Enter your email and password.");
      if (email) this.view.focusPassword();
      else this.view.focusEmail();
      return;
    }
    const signup = this.authMode === "signup";
    if (signup && password.length < 8) {
      this.view.authError("Choose a password of at least 8 characters.");
      this.view.focusPassword();
      return;
    }
    this.view.authBusy(true);
    this.view.authError("");
    try {
      const body = await this.api.authenticate(signup ? "signup" : "login", email, password);
      this.#startSession(sessionFromAuth(body, Date.now()), { signedUp: signup });
    } catch (error) {
      this.view.authError(
        errorStatus(error) === 409 ? "An account with this email already exists: log in instead." : errorMessage(error),
      );
    } finally {
      this.view.authBusy(false);
    }
  }

  /**
   * @param {Session} session
   * @param {{ signedUp: boolean }} how  a new account has the default zone: no need to ask
   */
  #startSession(session, { signedUp }) {
    const seq = this.storage.get("seq");
    if (!seq || seq.userId !== session.userId) {
      // Another account used this tab before: none of its positions apply.
      for (const name of FORMER_POSITIONS) this.storage.remove(name);
    }
    this.outbox.keepUser(session.userId);
    if (this.credentials) this.credentials.close();
    this.storage.set("session", session);
    this.credentials = this.#credentialsFor(session);
    this.user = this.api.forUser(this.credentials);
    this.hooks.entered({ focus: true, signedUp });
  }

  /**
   * The server keeps the user's time zone (repeating tasks keep their wall-clock time in it): a
   * new account, or one still on the default "UTC", gets this browser's. A zone set on purpose
   * (another device, the API) is left alone, and due times are shown in it.
   * @param {{ signedUp: boolean }} options
   */
  async syncZone({ signedUp }) {
    const credentials = this.credentials;
    const local = browserZone();
    try {
      const user = this.userApi();
      let me = signedUp ? null : await user.me();
      const unset = signedUp || (me !== null && me.timezone === "UTC");
      if (local && local !== "UTC" && unset && this.credentials === credentials) me = await user.setTimezone(local);
      if (me && this.credentials === credentials) this.hooks.zoneChanged(me.timezone);
    } catch (_) {
      /* due times stay in the browser's zone; the next login asks again */
    }
  }

  /** Log out: this session ends on the server too (best effort: offline, it is only forgotten here). */
  logOut() {
    const { credentials, user } = this;
    this.credentials = null; // out of the widget's hands: nothing they do from now on is saved or shown
    this.signOut({});
    if (!credentials || !user) return;
    // With a refresh first if the access token has run out (a tab back from sleep), then closed.
    user
      .logout()
      .catch(() => {})
      .finally(() => credentials.close());
  }

  /** @param {{ expired?: boolean, reason?: string }} options */
  signOut({ expired = false, reason = "" }) {
    this.conn.stop();
    if (this.credentials) this.credentials.close();
    this.credentials = null;
    this.user = null;
    this.socketToken = "";
    this.storage.remove("session");
    if (!expired) {
      // A deliberate log out forgets everything, unsent messages included (shared computers).
      this.outbox.clear();
      this.storage.remove("outbox");
      for (const name of FORMER_POSITIONS) this.storage.remove(name);
    }
    this.hooks.signedOut();
    this.view.hideNotice();
    const message = expired ? sessionEndedNotice(reason) : "";
    this.setAuthMode("login");
    this.showAuth(message);
    if (this.view.isOpen) this.view.focusEmail();
  }

  /** @returns {ClientFrame} */
  authFrame() {
    /** @type {ClientFrame} */
    const frame = { type: "auth", token: this.credentials ? this.credentials.token : "" };
    this.socketToken = frame.token;
    const lastSeq = this.hooks.lastSeq();
    if (lastSeq !== null) frame.after_seq = lastSeq; // replay what this tab missed
    return frame;
  }

  /** @param {ConnectionState} state */
  connectionChanged(state) {
    if (state !== "online" && this.credentials) this.credentials.socketExpiry(null);
  }

  /** @param {import("./protocol.js").HelloFrame} frame */
  onHello(frame) {
    if (!this.credentials) return;
    this.credentials.socketExpiry(frame.expires_at);
    // Newer tokens came while this socket was authenticating (another tab's, or a refresh).
    this.#giveSocket(this.credentials.token);
  }

  /** @param {import("./protocol.js").AuthRefreshedFrame} frame */
  onRefreshed(frame) {
    if (this.credentials) this.credentials.socketExpiry(frame.expires_at);
  }
}

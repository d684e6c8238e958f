// @ts-check
/* The REST API (README "REST API"): accounts and their sessions, and the logged-in user's
 * conversations, history and tasks, and their time zone. Errors become an ApiError with the server's `code` and a
 * readable message.
 */

import { defaultFilter, taskQuery } from "./tasks.js";
import { deviceLabel } from "./text.js";

/** @typedef {import("./protocol.js").Task} Task */
/** @typedef {import("./protocol.js").Conversation} Conversation */
/** @typedef {import("./protocol.js").Message} Message */
/** @typedef {import("./protocol.js").AuthBody} AuthBody */
/** @typedef {import("./protocol.js").DeviceSession} DeviceSession */
/** @typedef {import("./protocol.js").User} User */
/** @typedef {import("./tasks.js").TaskFilter} TaskFilter */
/**
 * @template T
 * @typedef {import("./protocol.js").Page<T>} Page
 */

const CONVERSATIONS_SHOWN = 50;
const TASKS_SHOWN = 500;
const OFFLINE = "Cannot reach the server. Check your connection and try again.";

/**
 * Where a logged-in user's calls get their access token (credentials.js implements it).
 * @typedef {object} TokenSource
 * @property {number} userId
 * @property {string} token  the access token held now
 * @property {() => Promise<string>} fresh  the access token, refreshed first if it is about to expire
 * @property {(options: { stale: string }) => Promise<import("./credentials.js").RefreshOutcome>} refresh
 */

export class ApiError extends Error {
  /**
   * @param {number} status  the HTTP status; 0 when the server could not be reached
   * @param {string} code  the server's error code, or `http_<status>`, or "network"
   * @param {string} detail  a sentence to show
   */
  constructor(status, code, detail) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

/**
 * @param {unknown} error
 * @returns {string}
 */
export function errorMessage(error) {
  return error instanceof Error ? error.message : String(error);
}

/**
 * @param {unknown} error
 * @returns {number | null} the HTTP status of an ApiError
 */
export function errorStatus(error) {
  return error instanceof ApiError ? error.status : null;
}

/**
 * The text of an error body: FastAPI's `detail` is a string, or a list of field errors.
 * @param {any} data
 * @param {Response} response
 */
function errorText(data, response) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && Array.isArray(data.detail)) {
    return data.detail
      .map((/** @type {{ loc?: unknown[], msg?: unknown }} */ item) => {
        const field = Array.isArray(item.loc) ? item.loc[item.loc.length - 1] : null;
        return typeof field === "string" ? `${field}: ${item.msg}` : String(item.msg);
      })
      .join("; ");
  }
  return `${response.status} ${response.statusText || "error"}`;
}

export class Api {
  /** @param {string} server  the backend's base URL */
  constructor(server) {
    this.server = server;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{ token?: string, body?: unknown }} [options]
   * @returns {Promise<any>} the JSON body (null for 204)
   */
  async request(method, path, { token, body } = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(this.server + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch (_) {
      throw new ApiError(0, "network", OFFLINE);
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

  /**
   * @param {"login" | "signup"} mode
   * @param {string} email
   * @param {string} password
   * @returns {Promise<AuthBody>} a new session's tokens, named in the session list by this browser
   */
  authenticate(mode, email, password) {
    const device = deviceLabel(navigator.userAgent);
    const body = device ? { email, password, device } : { email, password };
    return this.request("POST", `/api/auth/${mode}`, { body });
  }

  /**
   * New tokens for the session; the refresh token sent is used up (docs/sessions.md).
   * @param {string} refreshToken
   * @returns {Promise<AuthBody>}
   */
  refresh(refreshToken) {
    return this.request("POST", "/api/auth/refresh", { body: { refresh_token: refreshToken } });
  }

  /**
   * The calls of one logged-in user. A 401 is answered by refreshing the token and retrying once.
   * @param {TokenSource} tokens
   */
  forUser(tokens) {
    return new UserApi(this, tokens);
  }
}

export class UserApi {
  /**
   * @param {Api} api
   * @param {TokenSource} tokens
   */
  constructor(api, tokens) {
    this.api = api;
    this.tokens = tokens;
  }

  /**
   * With a fresh access token; on 401, one refresh and one retry. Only a refused refresh (the
   * session is gone, and the tab has been signed out) lets the 401 through.
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async #send(method, path, body) {
    const token = await this.tokens.fresh();
    try {
      return await this.api.request(method, path, { token, body });
    } catch (error) {
      if (errorStatus(error) !== 401) throw error;
      const outcome = await this.tokens.refresh({ stale: token });
      if (outcome === "unavailable") throw new ApiError(0, "network", OFFLINE);
      if (outcome === "ended") throw error;
      return await this.api.request(method, path, { token: this.tokens.token, body });
    }
  }

  /**
   * @param {string} method
   * @param {string} path  under /api/{user_id}
   * @param {unknown} [body]
   */
  #call(method, path, body) {
    return this.#send(method, `/api/${this.tokens.userId}${path}`, body);
  }

  /** @returns {Promise<Page<Conversation>>} most recently active first */
  conversations() {
    return this.#call("GET", `/conversations?limit=${CONVERSATIONS_SHOWN}`);
  }

  /**
   * A page of a conversation's history, oldest first.
   * @param {number} conversationId
   * @param {{ limit: number, before?: number | null }} page
   * @returns {Promise<Page<Message>>}
   */
  messages(conversationId, { limit, before = null }) {
    const older = before === null ? "" : `&before=${before}`;
    return this.#call("GET", `/conversations/${conversationId}/messages?limit=${limit}${older}`);
  }

  /**
   * @param {TaskFilter} [filter]  the panel's filters and order (default: all, oldest first)
   * @returns {Promise<Page<Task>>}
   */
  tasks(filter = defaultFilter()) {
    return this.#call("GET", `/tasks?${taskQuery(filter, TASKS_SHOWN)}`);
  }

  /**
   * Mark a task done (not a toggle: a second device doing the same changes nothing).
   * @param {number} taskId
   * @returns {Promise<Task>}
   */
  completeTask(taskId) {
    return this.#call("PATCH", `/tasks/${taskId}`, { completed: true });
  }

  /** @returns {Promise<User>} the account, with its time zone */
  me() {
    return this.#send("GET", "/api/auth/me");
  }

  /**
   * @param {string} timezone  an IANA name
   * @returns {Promise<User>}
   */
  setTimezone(timezone) {
    return this.#send("PATCH", "/api/auth/me", { timezone });
  }

  /**
   * @param {number} taskId
   * @returns {Promise<Task>} the task as the server now has it
   */
  toggleTask(taskId) {
    return this.#call("PATCH", `/tasks/${taskId}/complete`);
  }

  /** @returns {Promise<null>} this session ends: its tokens are refused everywhere, its sockets closed */
  logout() {
    return this.#send("POST", "/api/auth/logout");
  }

  /** @returns {Promise<Page<DeviceSession>>} the user's sessions, most recently used first */
  sessions() {
    return this.#send("GET", "/api/auth/sessions");
  }

  /**
   * End one of the user's sessions (its sockets are closed, its tokens refused).
   * @param {string} sessionId
   * @returns {Promise<null>}
   */
  endSession(sessionId) {
    return this.#send("DELETE", `/api/auth/sessions/${encodeURIComponent(sessionId)}`);
  }

  /** @returns {Promise<null>} every session of the user ends, this one included */
  logoutAll() {
    return this.#send("POST", "/api/auth/logout-all");
  }
}

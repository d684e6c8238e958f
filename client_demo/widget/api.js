// @ts-check
/* The REST API (README "REST API"): accounts, and the logged-in user's conversations, history
 * and tasks. Errors become an ApiError with the server's `code` and a readable message.
 */

/** @typedef {import("./protocol.js").Session} Session */
/** @typedef {import("./protocol.js").Task} Task */
/** @typedef {import("./protocol.js").Conversation} Conversation */
/** @typedef {import("./protocol.js").Message} Message */
/**
 * @template T
 * @typedef {import("./protocol.js").Page<T>} Page
 */

const CONVERSATIONS_SHOWN = 50;
const TASKS_SHOWN = 500;

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

  /**
   * @param {"login" | "signup"} mode
   * @param {string} email
   * @param {string} password
   * @returns {Promise<import("./protocol.js").AuthBody>}
   */
  authenticate(mode, email, password) {
    return this.request("POST", `/api/auth/${mode}`, { body: { email, password } });
  }

  /**
   * The calls of one logged-in user. A 401 means the token is no longer accepted.
   * @param {Session} session
   * @param {() => void} onUnauthorized
   */
  forUser(session, onUnauthorized) {
    return new UserApi(this, session, onUnauthorized);
  }
}

export class UserApi {
  /**
   * @param {Api} api
   * @param {Session} session
   * @param {() => void} onUnauthorized
   */
  constructor(api, session, onUnauthorized) {
    this.api = api;
    this.session = session;
    this.onUnauthorized = onUnauthorized;
  }

  /**
   * @param {string} method
   * @param {string} path  under /api/{user_id}
   * @param {unknown} [body]
   */
  async #call(method, path, body) {
    const { token, userId } = this.session;
    try {
      return await this.api.request(method, `/api/${userId}${path}`, { token, body });
    } catch (error) {
      if (errorStatus(error) === 401) this.onUnauthorized();
      throw error;
    }
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

  /** @returns {Promise<Page<Task>>} */
  tasks() {
    return this.#call("GET", `/tasks?limit=${TASKS_SHOWN}`);
  }

  /**
   * @param {number} taskId
   * @returns {Promise<Task>} the task as the server now has it
   */
  toggleTask(taskId) {
    return this.#call("PATCH", `/tasks/${taskId}/complete`);
  }
}

// @ts-check
/* The message log's DOM: persisted messages in id order, the reply streaming in, tool-call
 * lines, and the user's own messages still waiting for their ack (always last).
 *
 * Elements are kept by key: `m:<message id>`, `s:<turn id>` (a reply streaming in),
 * `c:<client_msg_id>` (a message not acked yet), `tool:<turn id>:<call id>`.
 */

import { part } from "./dom.js";
import { turnText } from "./turns.js";
import { describeTool, parseTime } from "./text.js";

/** @typedef {import("./protocol.js").Message} Message */
/** @typedef {import("./protocol.js").AckFrame} AckFrame */
/** @typedef {import("./protocol.js").TurnStatus} TurnStatus */
/** @typedef {import("./turns.js").Turn} Turn */
/** @typedef {import("./outbox.js").OutboxEntry} OutboxEntry */

const TOOL_ICONS = { ok: "\u2713", error: "!", pending: "\u2026" };

export class MessageLog {
  /** @type {Map<string, HTMLElement>} */
  #byKey = new Map();

  /**
   * @param {HTMLElement} log  the `role="log"` element
   * @param {HTMLElement} scroller  the element that scrolls it
   */
  constructor(log, scroller) {
    this.log = log;
    this.scroller = scroller;
    /** @type {number | null} the oldest message shown: history pages back from it */
    this.oldestId = null;
  }

  clear() {
    this.#byKey.clear();
    this.log.replaceChildren();
    this.oldestId = null;
  }

  get isEmpty() {
    return this.log.children.length === 0;
  }

  /** @returns {HTMLElement[]} */
  #children() {
    return Array.from(this.log.children).filter((child) => child instanceof HTMLElement);
  }

  /**
   * Whether a turn's persisted reply is already in the log (history loaded after it ended).
   * @param {string} turnId
   */
  hasReply(turnId) {
    return this.#children().some(
      (element) => element.dataset.turn === turnId && element.dataset.role === "assistant" && element.dataset.id,
    );
  }

  /** The text of the last entry if it is a persisted reply (what "which one?" choices come from). */
  lastReplyText() {
    const messages = this.#children().filter((child) => child.dataset.role);
    const last = messages[messages.length - 1];
    if (!last || last.dataset.role !== "assistant" || !last.dataset.id) return null;
    return part(last, ".bubble").textContent;
  }

  /**
   * Put a persisted element in id order; pending messages stay last.
   * @param {HTMLElement} element
   * @param {number} id  Infinity: after every persisted one
   */
  #place(element, id) {
    for (const child of this.#children()) {
      if (child === element) continue;
      const childId = child.dataset.id ? Number(child.dataset.id) : null;
      if ((childId !== null && childId > id) || child.dataset.pending === "true") {
        this.log.insertBefore(element, child);
        return;
      }
    }
    this.log.append(element);
  }

  /** @param {"user" | "assistant"} role */
  #messageElement(role) {
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

  /**
   * A persisted message, from history or a `message` event: added once, in id order.
   * @param {Message} message
   */
  upsert(message) {
    if (message.role === "tool") {
      if (message.tool_call) this.#historyTool(message);
      return;
    }
    if (message.id < (this.oldestId === null ? Infinity : this.oldestId)) this.oldestId = message.id;
    let element = this.#byKey.get(`m:${message.id}`);
    const stream = message.turn_id ? this.#byKey.get(`s:${message.turn_id}`) : undefined;
    if (message.role === "assistant" && stream) {
      this.#byKey.delete(`s:${message.turn_id}`);
      if (element) stream.remove();
      else element = stream; // the streamed bubble becomes the final message, in place
    }
    if (!element) element = this.#messageElement(message.role);
    this.#byKey.set(`m:${message.id}`, element);
    element.dataset.id = String(message.id);
    if (message.turn_id) element.dataset.turn = message.turn_id;
    element.classList.remove("streaming", "pending");
    delete element.dataset.pending;
    part(element, ".bubble").removeAttribute("aria-busy");
    const time = parseTime(message.created_at);
    if (time) element.title = time.toLocaleString();
    if (message.role === "assistant") {
      this.#finish(element, message.status || null, message.content);
    } else {
      part(element, ".bubble").textContent = message.content;
    }
    this.#place(element, message.id);
  }

  /**
   * @param {HTMLElement} element
   * @param {TurnStatus | null} status
   * @param {string} content
   * @param {string} [reason]
   */
  #finish(element, status, content, reason = "") {
    const bubble = part(element, ".bubble");
    const meta = part(element, ".meta");
    element.classList.remove("streaming");
    bubble.removeAttribute("aria-busy");
    let note = "";
    if (status === "cancelled") note = "Stopped";
    else if (status === "failed") note = reason ? `Failed: ${reason}` : "The reply failed";
    bubble.textContent = content || (note ? "\u2026" : "");
    meta.textContent = note;
    meta.hidden = !note;
    meta.classList.toggle("bad", status === "failed");
  }

  /**
   * A turn ended. Its bubble is still streaming only if no final `message` came (its
   * conversation was deleted mid-turn): a finished one goes, a stopped or failed one stays, marked.
   * @param {import("./protocol.js").TurnEndFrame} frame
   */
  endTurn(frame) {
    const bubble = this.#byKey.get(`s:${frame.turn_id}`);
    if (!bubble) return;
    this.#byKey.delete(`s:${frame.turn_id}`);
    if (frame.status === "done") bubble.remove();
    else this.#finish(bubble, frame.status, "", frame.reason);
  }

  /**
   * The bubble a running turn streams into, with its tool lines before it.
   * @param {Turn} turn
   */
  stream(turn) {
    if (this.#byKey.has(`s:${turn.id}`)) return;
    const element = this.#messageElement("assistant");
    element.classList.add("streaming");
    element.dataset.turn = turn.id;
    part(element, ".bubble").setAttribute("aria-busy", "true"); // read it once it is complete, not chunk by chunk
    this.#byKey.set(`s:${turn.id}`, element);
    this.#place(element, Infinity);
    this.renderStream(turn);
  }

  /** @param {Turn} turn */
  renderStream(turn) {
    const element = this.#byKey.get(`s:${turn.id}`);
    if (!element) return;
    const bubble = part(element, ".bubble");
    if (turn.text.length === 0 && !turn.final) {
      if (!bubble.querySelector(".typing")) {
        const dots = document.createElement("span");
        dots.className = "typing";
        dots.setAttribute("aria-label", "The assistant is typing");
        dots.append(document.createElement("i"), document.createElement("i"), document.createElement("i"));
        bubble.replaceChildren(dots);
      }
      return;
    }
    bubble.textContent = turnText(turn);
  }

  /** @param {string} key */
  #toolElement(key) {
    let element = this.#byKey.get(key);
    if (element) return element;
    element = document.createElement("div");
    element.className = "tool";
    const icon = document.createElement("span");
    icon.className = "tool-icon";
    icon.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.className = "tool-text";
    element.append(icon, text);
    this.#byKey.set(key, element);
    return element;
  }

  /**
   * @param {HTMLElement} element
   * @param {string} name
   * @param {unknown} args
   * @param {unknown} result
   * @param {boolean} done
   */
  #paintTool(element, name, args, result, done) {
    const line = describeTool(name, args, result, done);
    element.className = `tool ${line.kind}`;
    part(element, ".tool-icon").textContent = TOOL_ICONS[line.kind];
    part(element, ".tool-text").textContent = line.text;
  }

  /**
   * A tool call of a running turn, drawn before the reply it leads to.
   * @param {Turn} turn
   * @param {string} callId
   */
  renderTool(turn, callId) {
    const call = turn.tools.get(callId);
    if (!call) return;
    const key = `tool:${turn.id}:${callId}`;
    const fresh = !this.#byKey.has(key);
    const element = this.#toolElement(key);
    this.#paintTool(element, call.name, call.arguments, call.result, call.done);
    if (fresh) {
      const stream = this.#byKey.get(`s:${turn.id}`);
      if (stream) this.log.insertBefore(element, stream);
      else this.#place(element, Infinity);
    }
  }

  /** @param {Message} message  a history message of role "tool" */
  #historyTool(message) {
    const record = message.tool_call;
    if (!record) return;
    const element = this.#toolElement(`tool:${message.turn_id}:${record.id}`);
    element.dataset.id = String(message.id);
    this.#paintTool(element, record.name, record.arguments, record.result, true);
    this.#place(element, message.id);
  }

  /**
   * The user's message, shown at once, before its ack.
   * @param {OutboxEntry} entry
   */
  pending(entry) {
    const key = `c:${entry.client_msg_id}`;
    if (this.#byKey.has(key)) return;
    const element = this.#messageElement("user");
    element.classList.add("pending");
    element.dataset.pending = "true";
    element.dataset.clientId = entry.client_msg_id;
    part(element, ".bubble").textContent = entry.message;
    this.#byKey.set(key, element);
    this.log.append(element);
  }

  /**
   * @param {string} clientMsgId
   * @param {string} label  "Sending…", "Queued: …"
   */
  pendingLabel(clientMsgId, label) {
    const element = this.#byKey.get(`c:${clientMsgId}`);
    if (!element) return;
    const meta = part(element, ".meta");
    meta.hidden = false;
    meta.textContent = label;
  }

  /**
   * The message was committed: its pending bubble becomes the persisted message.
   * @param {AckFrame} frame
   * @param {number | null} conversationId  the conversation on screen
   */
  acked(frame, conversationId) {
    const pending = this.#byKey.get(`c:${frame.client_msg_id}`);
    if (!pending) return;
    this.#byKey.delete(`c:${frame.client_msg_id}`);
    if (this.#byKey.has(`m:${frame.message_id}`) || frame.conversation_id !== conversationId) {
      pending.remove(); // the `message` event got here first (a replay): keep that one
      return;
    }
    pending.classList.remove("pending");
    delete pending.dataset.pending;
    pending.dataset.id = String(frame.message_id);
    const meta = part(pending, ".meta");
    meta.textContent = "";
    meta.hidden = true;
    this.#byKey.set(`m:${frame.message_id}`, pending);
    this.#place(pending, frame.message_id);
  }

  /**
   * The server refused the message for good: say so next to it.
   * @param {string} clientMsgId
   * @param {string} detail
   */
  refused(clientMsgId, detail) {
    const pending = this.#byKey.get(`c:${clientMsgId}`);
    if (!pending) return;
    pending.classList.remove("pending");
    pending.classList.add("failed");
    delete pending.dataset.pending;
    const meta = part(pending, ".meta");
    meta.hidden = false;
    meta.textContent = `Not sent: ${detail}`;
  }

  // --- scrolling -------------------------------------------------------------------------------

  /**
   * Change the log, following its end if the reader was there.
   * @param {() => void} mutate
   */
  withScroll(mutate) {
    const scroller = this.scroller;
    const atEnd = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    mutate();
    if (atEnd) this.scrollToEnd();
  }

  scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /**
   * Add earlier messages above, keeping the reader's place.
   * @param {() => void} mutate
   */
  keepPlace(mutate) {
    const scroller = this.scroller;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    mutate();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }
}

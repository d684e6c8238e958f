// @ts-check
/* DOM-free: the messages typed and not yet acknowledged, kept across a reload. One is in flight
 * at a time, each conversation's in order, retried with the same client_msg_id until the server
 * acks it (connection.js sends them).
 */

export const BUSY_RETRY_MS = 1500;

/**
 * A random id (client_msg_id, a new conversation's draft key): 96 bits, so ids never clash.
 * @param {string} prefix
 */
export function randomId(prefix) {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes); // unlike randomUUID, available outside secure contexts too
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A message the server has not acknowledged yet. Field names are stored in sessionStorage as they
 * are (a reload keeps the queue), so they stay as they were.
 * @typedef {object} OutboxEntry
 * @property {string} client_msg_id  made once: every retry of this message reuses it
 * @property {number | null} conversation_id  null: the first message(s) of a new conversation
 * @property {string | null} draft  the new conversation's draft key (when conversation_id is null)
 * @property {string} message
 * @property {number} userId
 * @property {number} [retryAt]  epoch ms before which it must not be sent again (the server was busy)
 */

/**
 * @typedef {object} Sendable
 * @property {OutboxEntry | null} entry  the message to send now, if any
 * @property {number | null} wakeAt  when a message held back for a retry becomes sendable
 */

/** Unacknowledged messages, oldest first; one in flight at a time, in order per conversation. */
export class Outbox {
  /**
   * @param {OutboxEntry[]} [entries]  as saved before (a reload)
   * @param {(entries: OutboxEntry[]) => void} [save]  called after every change worth keeping
   */
  constructor(entries = [], save = () => {}) {
    /** @type {OutboxEntry[]} */
    this.entries = entries;
    /** @type {string | null} the client_msg_id sent and not acked yet */
    this.inflight = null;
    this.save = save;
  }

  /**
   * @param {{ message: string, conversationId: number | null, draft: string, userId: number }} message
   * @returns {OutboxEntry}
   */
  add({ message, conversationId, draft, userId }) {
    const entry = {
      client_msg_id: randomId("w-"),
      conversation_id: conversationId,
      draft: conversationId === null ? draft : null,
      message,
      userId,
    };
    this.entries.push(entry);
    this.save(this.entries);
    return entry;
  }

  /**
   * Another account logs in on this tab: only its own messages may go out.
   * @param {number} userId
   */
  keepUser(userId) {
    this.entries = this.entries.filter((entry) => entry.userId === userId);
    this.save(this.entries);
  }

  clear() {
    this.entries = [];
    this.inflight = null;
  }

  /** @param {string} clientMsgId */
  find(clientMsgId) {
    return this.entries.find((entry) => entry.client_msg_id === clientMsgId) || null;
  }

  /**
   * The oldest message that may go now. Each conversation's messages keep their order, and one
   * whose conversation runs a turn waits for its `turn.end` (one turn at a time per conversation).
   * @param {{ userId: number, now: number, busy: (conversationId: number) => boolean }} context
   * @returns {Sendable}
   */
  next({ userId, now, busy }) {
    if (this.inflight !== null) return { entry: null, wakeAt: null };
    const blocked = new Set();
    /** @type {number | null} */
    let wakeAt = null;
    for (const entry of this.entries) {
      if (entry.userId !== userId) continue;
      const lane = entry.conversation_id !== null ? `c${entry.conversation_id}` : `d${entry.draft}`;
      if (blocked.has(lane)) continue;
      if (entry.conversation_id !== null && busy(entry.conversation_id)) {
        blocked.add(lane);
        continue;
      }
      if (entry.retryAt && entry.retryAt > now) {
        blocked.add(lane);
        wakeAt = Math.min(wakeAt === null ? entry.retryAt : wakeAt, entry.retryAt);
        continue;
      }
      return { entry, wakeAt: null };
    }
    return { entry: null, wakeAt };
  }

  /** @param {OutboxEntry} entry */
  sent(entry) {
    this.inflight = entry.client_msg_id;
  }

  /** No ack in time: the same message, with the same client_msg_id, may go again. */
  timedOut() {
    this.inflight = null;
  }

  /**
   * The server committed a message: it leaves the outbox. The first message of a new
   * conversation created it, so the messages queued behind it now go there.
   * @param {import("./protocol.js").AckFrame} frame
   * @returns {OutboxEntry | null} the entry acknowledged (null: not ours, or acked before)
   */
  ack(frame) {
    if (this.inflight === frame.client_msg_id) this.inflight = null;
    const entry = this.find(frame.client_msg_id);
    if (!entry) return null;
    this.entries = this.entries.filter((other) => other !== entry);
    if (entry.conversation_id === null) {
      for (const other of this.entries) {
        if (other.draft === entry.draft && other.conversation_id === null) {
          other.conversation_id = frame.conversation_id;
        }
      }
    }
    this.save(this.entries);
    return entry;
  }

  /**
   * The server refused a message (`error` with `ref`). A busy conversation, a rate limit or an
   * overloaded server is retried after `retry_after` (or shortly); anything else is final and the
   * message leaves the outbox.
   * @param {import("./protocol.js").ErrorFrame} frame
   * @param {number} now
   * @returns {{ entry: OutboxEntry, retry: boolean } | null}  null: the error is not about a queued message
   */
  refused(frame, now) {
    const entry = frame.ref ? this.find(frame.ref) : null;
    if (!entry) return null;
    if (this.inflight === entry.client_msg_id) this.inflight = null;
    if (frame.code === "busy" || frame.code === "rate_limited" || frame.code === "overloaded") {
      // A turn runs there, or a budget is spent: try again when the server says (or shortly).
      entry.retryAt = now + (frame.retry_after ? frame.retry_after * 1000 : BUSY_RETRY_MS);
      return { entry, retry: true };
    }
    this.entries = this.entries.filter((other) => other !== entry);
    this.save(this.entries);
    return { entry, retry: false };
  }
}

/**
 * Whether a queued message belongs in the conversation on screen.
 * @param {OutboxEntry} entry
 * @param {number | null} conversationId  null: a new conversation, known by its draft key
 * @param {string} draftKey
 */
export function inView(entry, conversationId, draftKey) {
  if (entry.conversation_id !== null) return entry.conversation_id === conversationId;
  return conversationId === null && entry.draft === draftKey;
}

// @ts-check
/* DOM-free: the conversation list, most recent activity first, with an unread mark each. */

import { parseTime } from "./text.js";

/** @typedef {import("./protocol.js").Conversation} Conversation */

/** @typedef {Conversation & { unread: boolean }} ConversationItem */

/** The conversation list, most recent activity first, with an unread mark per conversation. */
export class ConversationList {
  /** @type {ConversationItem[]} */
  items = [];

  /**
   * Take the server's list, keeping the unread marks already known.
   * @param {Conversation[]} conversations
   * @param {(id: number) => boolean} unreadIfNew  the mark of a conversation not seen before
   */
  merge(conversations, unreadIfNew) {
    const known = new Map(this.items.map((item) => [item.id, item.unread]));
    this.items = conversations.map((c) => ({ ...c, unread: known.get(c.id) ?? unreadIfNew(c.id) }));
  }

  /** @param {number | null} id */
  get(id) {
    return this.items.find((item) => item.id === id) || null;
  }

  /** @param {number | null} id */
  has(id) {
    return this.get(id) !== null;
  }

  /**
   * One that was just created here: shown at once, before the server's own title and times arrive.
   * @param {number} id
   * @param {string} title
   * @param {string} now
   */
  add(id, title, now) {
    if (this.has(id)) return;
    this.items.unshift({ id, title, created_at: now, updated_at: now, unread: false });
  }

  /**
   * A message arrived in a conversation: it moves to the top.
   * @param {number} id @param {string} at @param {boolean} unread
   * @returns {boolean} whether the conversation is known
   */
  touch(id, at, unread) {
    const item = this.get(id);
    if (!item) return false;
    item.updated_at = at;
    if (unread) item.unread = true;
    this.items.sort((a, b) => {
      const ta = parseTime(a.updated_at);
      const tb = parseTime(b.updated_at);
      return (tb ? tb.getTime() : 0) - (ta ? ta.getTime() : 0) || b.id - a.id;
    });
    return true;
  }

  /** @param {number | null} id */
  markRead(id) {
    const item = this.get(id);
    if (item) item.unread = false;
  }

  /** @param {number} id */
  remove(id) {
    this.items = this.items.filter((item) => item.id !== id);
  }

  clear() {
    this.items = [];
  }
}

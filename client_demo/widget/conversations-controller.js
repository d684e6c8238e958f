// @ts-check
/* The conversation list in the sidebar: the server's list (conversations.js) kept in order and
 * marked unread by the events, and asked for again when a conversation it does not know speaks.
 * Which conversation is on screen is the chat view's (chat-controller.js).
 */

import { ConversationList } from "./conversations.js";

/** How long after an unknown conversation speaks the list is asked for (a burst asks once). */
const REFRESH_DELAY_MS = 150;

/**
 * @typedef {object} ConversationsDeps
 * @property {import("./render.js").View} view
 * @property {import("./session-controller.js").SessionController} session
 * @property {() => number | null} current  the conversation on screen
 */

export class ConversationsController {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #timer = undefined;

  /** @param {ConversationsDeps} deps */
  constructor({ view, session, current }) {
    this.view = view;
    this.session = session;
    this.current = current;
    this.list = new ConversationList();
  }

  render() {
    this.view.renderConversations(this.list.items, this.current());
  }

  /** The server's list, soon: it brings titles and times the events do not carry. */
  refreshSoon() {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(async () => {
      try {
        const convs = await this.session.userApi().conversations();
        this.list.merge(convs.data, (id) => id !== this.current());
        this.render();
      } catch (_) {
        /* the next event or reload tries again */
      }
    }, REFRESH_DELAY_MS);
  }

  /**
   * A conversation this tab just created (the ack of its first message): shown at once, then the
   * server's own title and times.
   * @param {number} id
   * @param {string} firstMessage
   */
  created(id, firstMessage) {
    if (!this.list.has(id)) {
      const title = firstMessage.split(/\s+/).join(" ").trim();
      this.list.add(id, title, new Date().toISOString());
      this.render();
    }
    this.refreshSoon();
  }

  /**
   * A message arrived: its conversation moves to the top, unread unless it is on screen.
   * @param {number} id @param {string} at @param {boolean} unread
   */
  activity(id, at, unread) {
    if (this.list.touch(id, at, unread)) this.render();
    else this.refreshSoon(); // started in another tab, or just now by our own ack
  }

  /** @param {number | null} id  now on screen */
  opened(id) {
    this.list.markRead(id);
    this.render();
  }

  /** @param {number} id */
  deleted(id) {
    this.list.remove(id);
    this.render();
  }

  reset() {
    this.list.clear();
  }
}

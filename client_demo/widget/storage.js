// @ts-check
/* sessionStorage, namespaced per server: what survives a reload but not the closing of the tab. */

/**
 * What the widget keeps, by name.
 * @typedef {object} Stored
 * @property {import("./protocol.js").Session} session  who is logged in
 * @property {import("./outbox.js").OutboxEntry[]} outbox  messages not acked yet
 * @property {{ userId: number, seq: number }} seq  the resume position (`after_seq`), and whose it is
 * @property {number | null} conversation  the conversation on screen (null: a new one)
 * @property {string} draft  the new conversation's draft key
 * @property {boolean} open  the panel is open
 * @property {import("./reminders.js").ShownReminder[]} reminders  the reminders showing (a reload shows them again)
 */

/**
 * @typedef {object} Store
 * @property {<K extends keyof Stored>(name: K) => Stored[K] | undefined} get  undefined: never stored, or unreadable
 * @property {<K extends keyof Stored>(name: K, value: Stored[K]) => void} set
 * @property {(name: keyof Stored) => void} remove
 */

/**
 * @param {string} prefix  e.g. "todochat:https://host:"
 * @returns {Store}
 */
export function scopedStorage(prefix) {
  return {
    get(name) {
      try {
        const raw = window.sessionStorage.getItem(prefix + name);
        return raw === null ? undefined : JSON.parse(raw);
      } catch (_) {
        return undefined;
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

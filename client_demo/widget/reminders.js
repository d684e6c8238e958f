// @ts-check
/* DOM-free: the reminders showing, shown once per `reminder` seq and closed wherever they are
 * dealt with (toasts.js draws them).
 */

import { parseTime } from "./text.js";

/** @typedef {import("./protocol.js").Task} Task */

/**
 * A reminder on screen.
 * @typedef {object} ShownReminder
 * @property {Task} task
 * @property {string} remindAt  when it was due
 * @property {number} seq  its `reminder` event
 */

/**
 * The reminders showing now, one per task. Each `reminder` event is shown once (by seq, so a
 * replay after a resume adds nothing), and closes on every device when the reminder is dealt
 * with anywhere: `reminder.dismissed`, a `task.updated` that snoozed it (a future `remind_at`)
 * or completed the task, or `task.deleted` (docs/protocol.md "Reminders").
 */
export class Reminders {
  /** @type {Map<number, ShownReminder>} by task id, in the order they fired */
  #shown = new Map();
  /** The highest reminder seq shown: an older one (replayed) is not shown again. */
  #lastSeq = 0;

  /**
   * The reminders a tab was showing before a reload (kept in sessionStorage).
   * @param {ShownReminder[]} shown
   */
  restore(shown) {
    for (const reminder of shown) {
      this.#shown.set(reminder.task.id, reminder);
      this.#lastSeq = Math.max(this.#lastSeq, reminder.seq);
    }
  }

  /** @returns {ShownReminder[]} oldest first */
  list() {
    return Array.from(this.#shown.values());
  }

  /** @param {number} taskId */
  has(taskId) {
    return this.#shown.has(taskId);
  }

  /**
   * @param {import("./protocol.js").ReminderFrame} frame
   * @returns {ShownReminder | null} the reminder to show, null if it was seen already or needs none
   */
  fired(frame) {
    if (frame.seq <= this.#lastSeq) return null;
    this.#lastSeq = frame.seq;
    if (frame.task.completed) return null;
    const shown = { task: frame.task, remindAt: frame.remind_at, seq: frame.seq };
    this.#shown.delete(frame.task.id); // fired again (a repeating task): to the end of the line
    this.#shown.set(frame.task.id, shown);
    return shown;
  }

  /** @param {number} taskId @returns {boolean} whether one closed */
  dismissed(taskId) {
    return this.#shown.delete(taskId);
  }

  /**
   * A task changed: its reminder closes if that dealt with it, or shows the new title.
   * @param {"task.created" | "task.updated" | "task.deleted"} type
   * @param {Task} task
   * @param {Date} now
   * @returns {boolean} whether what is shown changed
   */
  taskChanged(type, task, now) {
    const shown = this.#shown.get(task.id);
    if (!shown) return false;
    const next = parseTime(task.remind_at);
    if (type === "task.deleted" || task.completed || (next && next.getTime() > now.getTime())) {
      this.#shown.delete(task.id);
    } else {
      shown.task = task;
    }
    return true;
  }

  clear() {
    this.#shown.clear();
    this.#lastSeq = 0;
  }
}

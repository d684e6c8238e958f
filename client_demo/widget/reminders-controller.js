// @ts-check
/* Reminder toasts: the reminders showing (reminders.js), kept in sessionStorage so a reload
 * shows them again, closed when any device deals with them; Snooze, Done and dismiss, and the
 * browser notification. toasts.js draws them.
 */

import { errorMessage, errorStatus } from "./api.js";
import { Reminders } from "./reminders.js";
import { SNOOZE_MINUTES, Toasts } from "./toasts.js";

/**
 * @typedef {object} RemindersDeps
 * @property {import("./render.js").View} view
 * @property {import("./storage.js").Store} storage
 * @property {import("./connection.js").Connection} conn
 * @property {import("./due.js").Clock} clock
 * @property {import("./session-controller.js").SessionController} session
 * @property {import("./tasks-controller.js").TasksController} tasks
 * @property {() => void} openPanel  a notification was clicked
 */

export class RemindersController {
  /** @param {RemindersDeps} deps */
  constructor({ view, storage, conn, clock, session, tasks, openPanel }) {
    this.view = view;
    this.storage = storage;
    this.conn = conn;
    this.clock = clock;
    this.session = session;
    this.tasks = tasks;
    this.openPanel = openPanel;
    this.shown = new Reminders();
    this.toasts = new Toasts(view.root, {
      snooze: (taskId) => this.#send({ type: "reminder.snooze", task_id: taskId, minutes: SNOOZE_MINUTES }),
      done: (taskId) => this.#complete(taskId),
      dismiss: (taskId) => this.#send({ type: "reminder.dismiss", task_id: taskId }),
    });
  }

  reset() {
    this.shown.clear();
  }

  /** Showing before a reload: shown again; the events replayed from `after_seq` close any dealt with meanwhile. */
  restore() {
    this.shown.restore(this.storage.get("reminders") || []);
  }

  /** @param {import("./protocol.js").ReminderFrame} frame */
  onReminder(frame) {
    this.tasks.update(frame.task); // its remind_at is null now
    const shown = this.shown.fired(frame);
    this.tasks.render();
    if (!shown) return;
    this.render();
    this.toasts.notify(shown, this.clock.read(), this.openPanel);
  }

  /** @param {import("./protocol.js").ReminderDismissedFrame} frame */
  onDismissed(frame) {
    this.tasks.update(frame.task);
    if (this.shown.dismissed(frame.task.id)) this.render();
  }

  /** @param {import("./protocol.js").TaskFrame} frame  a snooze, a completion or a deletion closes its toast */
  onTask(frame) {
    if (this.shown.taskChanged(frame.type, frame.task, new Date())) this.render();
  }

  /** @param {import("./protocol.js").ClientFrame} frame  a snooze or a dismissal: every device hears it */
  #send(frame) {
    if (!this.conn.send(frame)) this.view.notice("Offline: the reminder can be dealt with once the connection is back.");
  }

  /** @param {number} taskId */
  async #complete(taskId) {
    try {
      const task = await this.session.userApi().completeTask(taskId);
      this.tasks.list.put(task);
      this.shown.taskChanged("task.updated", task, new Date());
    } catch (error) {
      if (errorStatus(error) === 404) this.shown.dismissed(taskId); // deleted meanwhile
      else this.view.notice(`Could not complete the task: ${errorMessage(error)}`);
    } finally {
      this.tasks.render();
      this.render();
    }
  }

  render() {
    const shown = this.shown.list();
    this.toasts.render(shown, this.clock.read());
    if (this.session.credentials) this.storage.set("reminders", shown);
  }
}

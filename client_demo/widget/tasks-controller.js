// @ts-check
/* The task panel: the user's tasks (tasks.js) under the filter chosen, kept current by the
 * `task.*` events, ticked from the panel; the notifications button. task-panel.js draws it.
 * Loading the list for a filter holds the events meanwhile, which is the sync's (sync-controller.js).
 */

import { errorMessage } from "./api.js";
import { TaskList, defaultFilter } from "./tasks.js";
import { TaskPanel } from "./task-panel.js";
import { askNotifications, notificationPermission } from "./toasts.js";

/** With a text filter, how long after a task event the server is asked again (it stems words). */
const SEARCH_REFRESH_MS = 300;

/**
 * @typedef {object} TasksDeps
 * @property {import("./render.js").View} view
 * @property {import("./due.js").Clock} clock
 * @property {import("./session-controller.js").SessionController} session
 * @property {() => void} load  the list for the current filter, from the server
 */

export class TasksController {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #searchTimer = undefined;

  /** @param {TasksDeps} deps */
  constructor({ view, clock, session, load }) {
    this.view = view;
    this.clock = clock;
    this.session = session;
    this.load = load;
    this.list = new TaskList();
    /** The task panel's filters and order; the REST list and live events both go through it. */
    this.filter = defaultFilter();
    this.panel = new TaskPanel(view.root, {
      toggleTask: (taskId) => this.#toggle(taskId),
      filter: (filter) => this.#setFilter(filter),
      enableNotifications: () => this.#enableNotifications(),
    });
  }

  reset() {
    this.list.clear();
  }

  /** @param {import("./protocol.js").TaskFrame} frame */
  onTask(frame) {
    const change = this.list.apply(frame);
    this.render(change === "added" ? frame.task.id : null);
    if (this.filter.q.trim()) {
      // The server's search may see a match (a stemmed word) where the widget's does not.
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => this.load(), SEARCH_REFRESH_MS);
    }
  }

  /**
   * A task as another frame carries it (a reminder's): it replaces the one listed, if any.
   * @param {import("./protocol.js").Task} task
   */
  update(task) {
    if (this.list.get(task.id)) this.list.put(task);
  }

  /** @param {import("./tasks.js").TaskFilter} filter */
  #setFilter(filter) {
    this.filter = filter;
    this.render(); // at once from what is known; then the server's answer
    this.load();
  }

  /** @param {number} taskId */
  async #toggle(taskId) {
    try {
      this.list.put(await this.session.userApi().toggleTask(taskId));
    } catch (error) {
      this.view.notice(`Could not update the task: ${errorMessage(error)}`);
    } finally {
      this.render(); // the server's answer decides the state shown
    }
  }

  async #enableNotifications() {
    await askNotifications();
    this.renderNotifyButton();
  }

  /** @param {number | null} [freshId]  a task just added, to show as new */
  render(freshId = null) {
    const { now, zone } = this.clock.read();
    const shown = this.list.list(this.filter, now);
    const filtered = JSON.stringify(this.filter) !== JSON.stringify(defaultFilter());
    this.panel.setTags(this.list.tags());
    this.panel.render(shown, this.list.counts(shown), { now, zone, filtered, freshId });
  }

  renderNotifyButton() {
    this.panel.showNotifyButton(notificationPermission() === "default");
  }
}

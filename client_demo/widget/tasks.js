// @ts-check
/* DOM-free: the user's task list, its filter and order. The filter is both the REST query and
 * the test a live `task.*` event goes through, so the list stays what the server would return
 * (task-panel.js draws it).
 */

import { parseTime } from "./text.js";

/** @typedef {import("./protocol.js").Task} Task */

/** @typedef {"added" | "updated" | "removed"} TaskChange */
/** @typedef {"created" | "due" | "priority" | "title"} TaskSort */

/**
 * What the task panel shows: the REST list's filters and order (README "REST API", tasks).
 * @typedef {object} TaskFilter
 * @property {"all" | "pending" | "completed"} status
 * @property {"" | import("./protocol.js").Priority} priority  "" any
 * @property {string} tag  "" any
 * @property {boolean} overdue  only pending tasks past their due time
 * @property {string} q  words to find in title and description ("" none)
 * @property {TaskSort} sort
 * @property {"asc" | "desc"} order
 */

/** @type {Record<TaskSort, "asc" | "desc">} each sort's natural direction, as the server has it */
export const DEFAULT_ORDER = { created: "asc", due: "asc", priority: "desc", title: "asc" };

/** @returns {TaskFilter} everything, oldest first */
export function defaultFilter() {
  return { status: "all", priority: "", tag: "", overdue: false, q: "", sort: "created", order: "asc" };
}

/**
 * The query string of `GET /api/{user_id}/tasks` for a filter (defaults left out).
 * @param {TaskFilter} filter
 * @param {number} limit
 */
export function taskQuery(filter, limit) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (filter.status !== "all") params.set("status", filter.status);
  if (filter.priority) params.set("priority", filter.priority);
  if (filter.tag) params.set("tag", filter.tag);
  if (filter.overdue) params.set("overdue", "true");
  if (filter.q.trim()) params.set("q", filter.q.trim());
  if (filter.sort !== "created") params.set("sort", filter.sort);
  if (filter.order !== DEFAULT_ORDER[filter.sort]) params.set("order", filter.order);
  return params.toString();
}

/** @param {Task} task @param {Date} now */
export function isOverdue(task, now) {
  const due = parseTime(task.due_at);
  return !task.completed && due !== null && due.getTime() < now.getTime();
}

/**
 * Whether a task belongs in the filtered list: how a live `task.*` event joins or leaves it.
 * Text is matched as the embedded database does (every word somewhere in title or description);
 * PostgreSQL's full-text search stems words, so with text the widget also asks the server again.
 * @param {Task} task
 * @param {TaskFilter} filter
 * @param {Date} now
 */
export function matchesFilter(task, filter, now) {
  if (filter.status !== "all" && task.completed !== (filter.status === "completed")) return false;
  if (filter.priority && (task.priority || "normal") !== filter.priority) return false;
  if (filter.tag && !(task.tags || []).includes(filter.tag)) return false;
  if (filter.overdue && !isOverdue(task, now)) return false;
  const words = filter.q.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
  const text = `${task.title}\n${task.description || ""}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

const PRIORITY_RANK = { low: 0, normal: 1, high: 2 };

/**
 * The server's order for a sort: id breaks ties; no due time sorts last, either way.
 * @param {TaskFilter} filter
 * @returns {(a: Task, b: Task) => number}
 */
export function taskOrder(filter) {
  const sign = filter.order === "desc" ? -1 : 1;
  /** @param {Task} task */
  const due = (task) => {
    const date = parseTime(task.due_at);
    return date ? date.getTime() : null;
  };
  /** @param {Task} a @param {Task} b */
  const byDue = (a, b) => {
    const [da, db] = [due(a), due(b)];
    if (da === null || db === null) return da === db ? 0 : da === null ? 1 : -1;
    return da - db;
  };
  return (a, b) => {
    switch (filter.sort) {
      case "due": {
        const [da, db] = [due(a), due(b)];
        if (da === null || db === null) return byDue(a, b) || a.id - b.id;
        return sign * (da - db) || a.id - b.id;
      }
      case "priority":
        return (
          sign * (PRIORITY_RANK[a.priority || "normal"] - PRIORITY_RANK[b.priority || "normal"]) ||
          byDue(a, b) ||
          a.id - b.id
        );
      case "title": {
        const [ta, tb] = [a.title.toLowerCase(), b.title.toLowerCase()];
        return sign * (ta < tb ? -1 : ta > tb ? 1 : 0) || a.id - b.id;
      }
      default:
        return sign * (a.id - b.id);
    }
  };
}

/** The user's tasks, loaded from REST and kept current by `task.*` events. */
export class TaskList {
  /** @type {Map<number, Task>} */
  #tasks = new Map();
  /** @type {Set<string>} every tag seen on a task this session: the tag filter's choices */
  #tags = new Set();

  /** @param {Task[]} tasks */
  replace(tasks) {
    this.#tasks = new Map(tasks.map((task) => [task.id, task]));
    for (const task of tasks) this.#learnTags(task);
  }

  /** @param {Task} task */
  #learnTags(task) {
    for (const tag of task.tags || []) this.#tags.add(tag);
  }

  /** @param {number} id */
  get(id) {
    return this.#tasks.get(id) || null;
  }

  /**
   * A task as the server now has it (an event or a REST answer).
   * @param {Task} task
   * @returns {TaskChange}
   */
  put(task) {
    const known = this.#tasks.has(task.id);
    this.#tasks.set(task.id, task);
    this.#learnTags(task);
    return known ? "updated" : "added";
  }

  /** @param {import("./protocol.js").TaskFrame} frame @returns {TaskChange} */
  apply(frame) {
    if (frame.type !== "task.deleted") return this.put(frame.task);
    this.#tasks.delete(frame.task.id);
    return "removed";
  }

  /**
   * In the order they are shown, only those the filter lets through (a task changed by an event
   * may have left it).
   * @param {TaskFilter} [filter]
   * @param {Date} [now]
   * @returns {Task[]}
   */
  list(filter = defaultFilter(), now = new Date()) {
    return Array.from(this.#tasks.values())
      .filter((task) => matchesFilter(task, filter, now))
      .sort(taskOrder(filter));
  }

  /** @returns {string[]} sorted */
  tags() {
    return Array.from(this.#tags).sort();
  }

  /** @param {Task[]} [tasks]  those shown (default: all) */
  counts(tasks = Array.from(this.#tasks.values())) {
    let done = 0;
    for (const task of tasks) if (task.completed) done += 1;
    return { open: tasks.length - done, done };
  }

  clear() {
    this.#tasks.clear();
    this.#tags.clear();
  }
}

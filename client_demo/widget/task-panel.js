// @ts-check
/* The task panel's DOM: the filter and sort form, and the list, each task with its due time (in
 * words, in the user's zone), priority, tags and whether it repeats. It draws what
 * tasks-controller.js gives it and turns the form and the checkboxes into intents. Server text
 * goes in with textContent only.
 */

import { part, pick, reconcile } from "./dom.js";
import { describeDue, describeRecurrence } from "./due.js";
import { DEFAULT_ORDER } from "./tasks.js";

/** @typedef {import("./protocol.js").Task} Task */
/** @typedef {import("./tasks.js").TaskFilter} TaskFilter */
/** @typedef {import("./tasks.js").TaskSort} TaskSort */

/**
 * @typedef {object} TaskIntents
 * @property {(taskId: number) => Promise<void>} toggleTask
 * @property {(filter: TaskFilter) => void} filter  the form changed
 * @property {() => void} enableNotifications  from a click: browsers ask only from a user gesture
 */

/** How long typing in the search box waits before asking the server. */
const SEARCH_DELAY_MS = 250;
const SORTS = /** @type {TaskSort[]} */ (["created", "due", "priority", "title"]);

export class TaskPanel {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #searchTimer = undefined;

  /**
   * @param {ShadowRoot} root  the widget's, holding the markup of markup.js
   * @param {TaskIntents} intents
   */
  constructor(root, intents) {
    const select = (/** @type {string} */ selector) => pick(root, selector, HTMLSelectElement);
    this.el = {
      list: part(root, ".task-list"),
      empty: part(root, ".task-empty"),
      count: part(root, ".task-count"),
      form: pick(root, ".task-filters", HTMLFormElement),
      toggle: pick(root, ".filters-toggle", HTMLButtonElement),
      notify: pick(root, ".notify-btn", HTMLButtonElement),
      q: pick(root, "#tc-q", HTMLInputElement),
      status: select("#tc-status"),
      priority: select("#tc-priority"),
      tag: select("#tc-tag"),
      overdue: pick(root, "#tc-overdue", HTMLInputElement),
      sort: select("#tc-sort"),
      order: select("#tc-order"),
    };
    this.intents = intents;
    this.#bind();
  }

  #bind() {
    const { el, intents } = this;
    el.toggle.addEventListener("click", () => this.showFilters(el.toggle.getAttribute("aria-expanded") !== "true"));
    el.form.addEventListener("submit", (event) => event.preventDefault());
    el.form.addEventListener("change", (event) => {
      if (event.target === el.q) return; // typed: the input event below has it
      if (event.target === el.sort) el.order.value = DEFAULT_ORDER[this.#sort()];
      clearTimeout(this.#searchTimer);
      intents.filter(this.filter());
    });
    el.q.addEventListener("input", () => {
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => intents.filter(this.filter()), SEARCH_DELAY_MS);
    });
    el.form.addEventListener("reset", () => {
      // After the browser has put every control back to its default.
      setTimeout(() => intents.filter(this.filter()), 0);
    });
    el.notify.addEventListener("click", () => intents.enableNotifications());
  }

  /** @param {boolean} open */
  showFilters(open) {
    this.el.form.hidden = !open;
    this.el.toggle.setAttribute("aria-expanded", String(open));
  }

  /** @returns {TaskSort} */
  #sort() {
    const value = /** @type {TaskSort} */ (this.el.sort.value);
    return SORTS.includes(value) ? value : "created";
  }

  /** @returns {TaskFilter} what the form says */
  filter() {
    const { el } = this;
    return {
      status: el.status.value === "pending" || el.status.value === "completed" ? el.status.value : "all",
      priority: el.priority.value === "low" || el.priority.value === "normal" || el.priority.value === "high" ? el.priority.value : "",
      tag: el.tag.value,
      overdue: el.overdue.checked,
      q: el.q.value,
      sort: this.#sort(),
      order: el.order.value === "desc" ? "desc" : "asc",
    };
  }

  /**
   * The tag filter's choices: every tag seen, and the one selected.
   * @param {string[]} tags
   */
  setTags(tags) {
    const select = this.el.tag;
    const selected = select.value;
    const wanted = ["", ...tags];
    if (selected && !tags.includes(selected)) wanted.push(selected);
    const have = Array.from(select.options, (option) => option.value);
    if (have.join("\n") === wanted.join("\n")) return;
    select.replaceChildren(
      ...wanted.map((tag) => {
        const option = document.createElement("option");
        option.value = tag;
        option.textContent = tag ? `#${tag}` : "Any";
        return option;
      }),
    );
    select.value = selected;
  }

  /**
   * The "Enable notifications" button: only while the browser has not been asked yet.
   * @param {boolean} show
   */
  showNotifyButton(show) {
    this.el.notify.hidden = !show;
  }

  /**
   * @param {Task[]} tasks  in the order shown
   * @param {{ open: number, done: number }} counts
   * @param {{ now: Date, zone: string, filtered: boolean, freshId?: number | null }} context
   */
  render(tasks, counts, { now, zone, filtered, freshId = null }) {
    const { el } = this;
    el.empty.hidden = tasks.length > 0;
    el.empty.textContent = filtered ? "No tasks match these filters." : "No tasks yet. Ask the assistant to add one.";
    el.count.textContent = tasks.length ? `${counts.open} open \u00b7 ${counts.done} done` : "";
    reconcile(
      el.list,
      tasks,
      (task) => task.id,
      (task) => this.#item(task),
      (item, task) => {
        const due = task.due_at ? describeDue(task, { now, zone }) : null;
        item.classList.toggle("done", task.completed);
        item.classList.toggle("overdue", Boolean(due && due.overdue));
        pick(item, "input", HTMLInputElement).checked = task.completed;
        part(item, ".task-title").textContent = task.title;
        const desc = part(item, ".task-desc");
        desc.textContent = task.description || "";
        desc.hidden = !task.description;
        this.#meta(part(item, ".task-meta"), task, due);
        if (task.id === freshId) {
          item.classList.remove("fresh");
          void item.offsetWidth; // restart the highlight animation
          item.classList.add("fresh");
        }
      },
    );
  }

  /**
   * Due time, priority (high and low: normal says nothing), tags, repeating: small chips.
   * @param {HTMLElement} box
   * @param {Task} task
   * @param {import("./due.js").Due | null} due
   */
  #meta(box, task, due) {
    /** @type {HTMLElement[]} */
    const chips = [];
    if (due) {
      const time = document.createElement("time");
      time.className = due.overdue ? "due overdue-mark" : "due";
      time.dateTime = task.due_at || "";
      time.title = due.full;
      // Overdue is said in words and with a mark, not by its colour alone (WCAG 1.4.1).
      time.textContent = due.overdue ? `\u26a0 ${due.text[0].toUpperCase()}${due.text.slice(1)}` : due.text;
      chips.push(time);
    }
    if (task.priority === "high" || task.priority === "low") {
      const priority = document.createElement("span");
      priority.className = `prio prio-${task.priority}`;
      priority.textContent = task.priority === "high" ? "\u2191 High" : "\u2193 Low";
      priority.title = `${task.priority === "high" ? "High" : "Low"} priority`;
      chips.push(priority);
    }
    for (const tag of task.tags || []) {
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.textContent = `#${tag}`;
      chips.push(chip);
    }
    const repeats = describeRecurrence(task.recurrence);
    if (repeats) {
      const chip = document.createElement("span");
      chip.className = "repeat";
      chip.textContent = `\u21bb ${repeats}`;
      chips.push(chip);
    }
    box.replaceChildren(...chips);
    box.hidden = chips.length === 0;
  }

  /** @param {Task} task */
  #item(task) {
    const item = document.createElement("li");
    item.className = "task";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `tc-task-${task.id}`;
    const label = document.createElement("label");
    label.htmlFor = box.id;
    const title = document.createElement("span");
    title.className = "task-title";
    const desc = document.createElement("span");
    desc.className = "task-desc";
    const meta = document.createElement("span");
    meta.className = "task-meta";
    label.append(title, desc, meta);
    const ref = document.createElement("span");
    ref.className = "task-id";
    ref.setAttribute("aria-hidden", "true");
    ref.textContent = `#${task.id}`;
    box.addEventListener("click", (event) => {
      if (box.getAttribute("aria-busy") === "true") event.preventDefault(); // one toggle at a time
    });
    box.addEventListener("change", async () => {
      // Not `disabled`: that would take keyboard focus away from the checkbox.
      box.setAttribute("aria-busy", "true");
      try {
        await this.intents.toggleTask(task.id);
      } finally {
        box.removeAttribute("aria-busy");
      }
    });
    item.append(box, label, ref);
    return item;
  }
}

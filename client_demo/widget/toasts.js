// @ts-check
/* Reminders on screen: a toast per reminder inside the widget (Snooze 10 min, Done, dismiss),
 * and, if the person allowed it, a browser notification. What is shown comes from reminders.js's
 * Reminders; this module only draws it and turns the buttons into intents.
 */

import { part, reconcile } from "./dom.js";
import { describeDue } from "./due.js";

/** @typedef {import("./reminders.js").ShownReminder} ShownReminder */

export const SNOOZE_MINUTES = 10;
const BELL =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 3a6 6 0 0 0-6 6v3.6L4.3 16a1 1 0 0 0 .9 1.5h13.6a1 1 0 0 0 .9-1.5L18 12.6V9a6 6 0 0 0-6-6zm-2.4 16a2.5 2.5 0 0 0 4.8 0z"/></svg>';

/**
 * @typedef {object} ReminderIntents
 * @property {(taskId: number) => void} snooze
 * @property {(taskId: number) => void} done
 * @property {(taskId: number) => void} dismiss
 */

/**
 * "Call the dentist: due tomorrow 17:00", or the title alone.
 * @param {ShownReminder} reminder
 * @param {{ now: Date, zone: string }} context
 */
export function reminderText(reminder, context) {
  const due = describeDue(reminder.task, context);
  return due ? `${due.text[0].toUpperCase()}${due.text.slice(1)}` : "";
}

export class Toasts {
  /** @type {Map<number, Notification>} browser notifications by task id, closed with their toast */
  #notifications = new Map();

  /**
   * @param {ShadowRoot} root
   * @param {ReminderIntents} intents
   */
  constructor(root, intents) {
    this.box = part(root, ".toasts");
    this.intents = intents;
  }

  /**
   * @param {ShownReminder[]} reminders  oldest first
   * @param {{ now: Date, zone: string }} context
   */
  render(reminders, context) {
    this.box.hidden = reminders.length === 0;
    reconcile(
      this.box,
      reminders,
      (reminder) => reminder.task.id,
      (reminder) => this.#toast(reminder.task.id),
      (toast, reminder) => {
        const title = reminder.task.title;
        part(toast, ".toast-title").textContent = title;
        const due = reminderText(reminder, context);
        const when = part(toast, ".toast-due");
        when.textContent = due;
        when.hidden = !due;
        part(toast, ".toast-snooze").setAttribute("aria-label", `Snooze ${SNOOZE_MINUTES} min: ${title}`);
        part(toast, ".toast-done").setAttribute("aria-label", `Mark ${title} as done`);
        part(toast, ".toast-close").setAttribute("aria-label", `Dismiss the reminder for ${title}`);
      },
    );
    const open = new Set(reminders.map((reminder) => reminder.task.id));
    for (const [taskId, notification] of this.#notifications) {
      if (open.has(taskId)) continue;
      notification.close(); // dealt with here or on another device
      this.#notifications.delete(taskId);
    }
  }

  /** @param {number} taskId */
  #toast(taskId) {
    const toast = document.createElement("div");
    toast.className = "toast";
    toast.setAttribute("role", "alert");
    const text = document.createElement("p");
    text.className = "toast-text";
    const label = document.createElement("span");
    label.className = "toast-label";
    label.innerHTML = BELL; // static markup
    label.append("Reminder: ");
    const title = document.createElement("strong");
    title.className = "toast-title";
    const due = document.createElement("span");
    due.className = "toast-due";
    text.append(label, title, due);
    const actions = document.createElement("div");
    actions.className = "toast-actions";
    /** @param {string} className @param {string} text @param {() => void} act */
    const button = (className, text, act) => {
      const element = document.createElement("button");
      element.type = "button";
      element.className = className;
      element.textContent = text;
      element.addEventListener("click", act);
      return element;
    };
    actions.append(
      button("small-btn toast-snooze", `Snooze ${SNOOZE_MINUTES} min`, () => this.intents.snooze(taskId)),
      button("small-btn toast-done", "Done", () => this.intents.done(taskId)),
    );
    const close = button("icon-btn toast-close", "\u00d7", () => this.intents.dismiss(taskId));
    toast.append(text, actions, close);
    return toast;
  }

  /**
   * A browser notification too, when the person allowed them. Every tab of the browser makes
   * one; the tag makes them one notification.
   * @param {ShownReminder} reminder
   * @param {{ now: Date, zone: string }} context
   * @param {() => void} onClick
   */
  notify(reminder, context, onClick) {
    if (notificationPermission() !== "granted") return;
    try {
      const notification = new Notification(`\u23f0 Reminder: ${reminder.task.title}`, {
        body: reminderText(reminder, context),
        tag: `todo-chat-reminder-${reminder.task.id}-${reminder.seq}`,
      });
      notification.addEventListener("click", () => {
        window.focus();
        onClick();
        notification.close();
      });
      this.#notifications.set(reminder.task.id, notification);
    } catch (_) {
      /* Android Chrome allows them only from a service worker: the toast is there anyway */
    }
  }
}

/** @returns {NotificationPermission | "unsupported"} */
export function notificationPermission() {
  return typeof Notification === "function" ? Notification.permission : "unsupported";
}

/** Ask the browser (from a click: browsers refuse to ask otherwise). */
export async function askNotifications() {
  if (typeof Notification !== "function") return "unsupported";
  try {
    return await Notification.requestPermission();
  } catch (_) {
    return Notification.permission;
  }
}

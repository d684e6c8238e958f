// @ts-check
/* When a task is due, in words, in the user's time zone: "due tomorrow 17:00", "due in 2 h",
 * "overdue by 3 days"; and what a repeating task's RRULE says ("repeats weekly"). No DOM, and
 * "now" and the zone are passed in, so `node --test` can pin both.
 */

import { parseTime } from "./text.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Closer than this, a due time reads as a countdown ("in 2 h"); further, as a day and a time. */
const COUNTDOWN_MS = 6 * HOUR;
const LOCALE = "en-GB"; // the widget speaks English; 24-hour times, day before month

/**
 * @typedef {object} Due
 * @property {string} text  "due tomorrow 17:00", "overdue by 3 days"
 * @property {string} full  the instant spelled out in the zone: "Thu 3 Dec 2026, 17:00 (Europe/Berlin)"
 * @property {boolean} overdue  pending and past its due time
 */

/**
 * The zone the browser runs in (an IANA name), or "" if it does not say.
 * @returns {string}
 */
export function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (_) {
    return "";
  }
}

/**
 * `zone` if the browser knows it, else UTC: a zone name the server accepts may be newer than
 * the browser's tz data.
 * @param {string} zone
 */
export function usableZone(zone) {
  try {
    new Intl.DateTimeFormat(LOCALE, { timeZone: zone });
    return zone;
  } catch (_) {
    return "UTC";
  }
}

/** What due times in words are relative to: "now", in the user's zone (the server's setting). */
export class Clock {
  /** @param {string} zone  the browser's until the server says */
  constructor(zone) {
    this.zone = usableZone(zone);
  }

  /** @param {string} zone  the account's, once the server says */
  setZone(zone) {
    this.zone = usableZone(zone);
  }

  /** @returns {{ now: Date, zone: string }} */
  read() {
    return { now: new Date(), zone: this.zone };
  }
}

/**
 * @param {Date} date
 * @param {string} zone
 * @returns {number} the calendar day of `date` in `zone`, as days since 1970-01-01
 */
function dayNumber(date, zone) {
  const parts = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: zone })
    .formatToParts(date)
    .reduce((acc, part) => ({ ...acc, [part.type]: Number(part.value) }), /** @type {Record<string, number>} */ ({}));
  return Math.round(Date.UTC(parts.year, parts.month - 1, parts.day) / DAY);
}

/**
 * @param {Date} date
 * @param {string} zone
 * @param {Intl.DateTimeFormatOptions} options
 */
function format(date, zone, options) {
  return new Intl.DateTimeFormat(LOCALE, { ...options, hourCycle: "h23", timeZone: zone }).format(date);
}

/**
 * "5 min", "2 h", "3 days": a span rounded down to its largest unit (at least one minute).
 * @param {number} ms
 */
export function span(ms) {
  if (ms < HOUR) return `${Math.max(1, Math.floor(ms / MINUTE))} min`;
  if (ms < DAY) return `${Math.floor(ms / HOUR)} h`;
  const days = Math.floor(ms / DAY);
  return `${days} day${days === 1 ? "" : "s"}`;
}

/**
 * "17:00" today, "tomorrow 17:00", "Tue 17:00" within the week, "3 Dec 17:00" this year, "3 Dec 2027 17:00".
 * @param {Date} date
 * @param {Date} now
 * @param {string} zone
 */
export function when(date, now, zone) {
  const time = format(date, zone, { hour: "2-digit", minute: "2-digit" });
  const days = dayNumber(date, zone) - dayNumber(now, zone);
  if (days === 0) return `today ${time}`;
  if (days === 1) return `tomorrow ${time}`;
  if (days === -1) return `yesterday ${time}`;
  if (days > 1 && days < 7) return `${format(date, zone, { weekday: "short" })} ${time}`;
  const sameYear = format(date, zone, { year: "numeric" }) === format(now, zone, { year: "numeric" });
  const day = format(date, zone, sameYear ? { day: "numeric", month: "short" } : { day: "numeric", month: "short", year: "numeric" });
  return `${day} ${time}`;
}

/**
 * A task's due time in words, or null when it has none.
 * @param {{ due_at?: string | null, completed: boolean }} task
 * @param {{ now: Date, zone: string }} context
 * @returns {Due | null}
 */
export function describeDue(task, { now, zone }) {
  const due = parseTime(task.due_at);
  if (!due) return null;
  const tz = usableZone(zone);
  const full = `${format(due, tz, {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  })} (${tz})`;
  const ahead = due.getTime() - now.getTime();
  if (ahead < 0 && !task.completed) return { text: `overdue by ${span(-ahead)}`, full, overdue: true };
  if (ahead < 0) return { text: `was due ${when(due, now, tz)}`, full, overdue: false };
  if (ahead < COUNTDOWN_MS) return { text: `due in ${span(ahead)}`, full, overdue: false };
  return { text: `due ${when(due, now, tz)}`, full, overdue: false };
}

/** @type {Record<string, [string, string]>} FREQ: [once, every n] */
const FREQUENCIES = { DAILY: ["daily", "days"], WEEKLY: ["weekly", "weeks"], MONTHLY: ["monthly", "months"], YEARLY: ["yearly", "years"] };
/** @type {Record<string, string>} */
const WEEKDAYS = { MO: "Mon", TU: "Tue", WE: "Wed", TH: "Thu", FR: "Fri", SA: "Sat", SU: "Sun" };

/**
 * "repeats weekly", "repeats every 2 weeks on Mon, Thu"; "repeats" for a rule it cannot read.
 * @param {string | null | undefined} rule  an RRULE of the server's subset
 */
export function describeRecurrence(rule) {
  if (!rule) return "";
  /** @type {Record<string, string>} */
  const fields = {};
  for (const pair of rule.replace(/^RRULE:/i, "").split(";")) {
    const [key, value] = pair.split("=");
    if (key && value) fields[key.toUpperCase()] = value.toUpperCase();
  }
  const freq = FREQUENCIES[fields.FREQ || ""];
  if (!freq) return "repeats";
  const interval = Number(fields.INTERVAL || "1");
  let text = interval > 1 ? `repeats every ${interval} ${freq[1]}` : `repeats ${freq[0]}`;
  if (fields.BYDAY) text += ` on ${fields.BYDAY.split(",").map((day) => WEEKDAYS[day] || day).join(", ")}`;
  if (fields.BYMONTHDAY) text += ` on day ${fields.BYMONTHDAY}`;
  return text;
}

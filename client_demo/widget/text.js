// @ts-check
/* Words the widget shows for what the server sends: times, tool-call lines, the task choices
 * a "which one?" reply offers, and why a session ended. No DOM here.
 */

/**
 * A timestamp from the API (UTC, with or without its offset), or null.
 * @param {string | null | undefined} value
 */
export function parseTime(value) {
  if (!value) return null;
  const date = new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(value) ? value : `${value}Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

/**
 * "14:05" today, "Mar 3" before.
 * @param {string | null | undefined} value
 */
export function shortTime(value) {
  const date = parseTime(value);
  if (!date) return "";
  const now = new Date();
  if (date.toDateString() === now.toDateString()) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return date.toLocaleDateString([], { month: "short", day: "numeric" });
}

/** @typedef {"ok" | "error" | "pending"} ToolKind */
/** @typedef {{ kind: ToolKind, text: string }} ToolLine */

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isRecord(value) {
  return Boolean(value) && typeof value === "object" && !Array.isArray(value);
}

/** @type {Record<string, string>} */
const VERBS = { add_task: "add", complete_task: "complete", delete_task: "delete", update_task: "update" };

/**
 * A compact, human line for one tool call: "Added task: Buy groceries".
 * @param {string} name
 * @param {unknown} rawArgs
 * @param {unknown} result
 * @param {boolean} finished
 * @returns {ToolLine}
 */
export function describeTool(name, rawArgs, result, finished) {
  const args = isRecord(rawArgs) ? rawArgs : {};
  const ref = args.task_id ? `#${args.task_id}` : "";
  const title = (isRecord(result) && result.title) || args.title || ref;
  if (finished && isRecord(result) && result.error) {
    const what = VERBS[name];
    const task = what ? `${what} task${ref ? ` ${ref}` : ""}` : name;
    return { kind: "error", text: `Could not ${task}: ${result.message || result.error}` };
  }
  /** @param {string} verb @returns {ToolLine} */
  const done = (verb) => ({ kind: finished ? "ok" : "pending", text: `${verb}: ${title}` });
  switch (name) {
    case "add_task":
      return done(finished ? "Added task" : "Adding task");
    case "complete_task":
      return done(finished ? "Completed task" : "Completing task");
    case "delete_task":
      return done(finished ? "Deleted task" : "Deleting task");
    case "update_task":
      return done(finished ? "Updated task" : "Updating task");
    case "list_tasks": {
      const which = args.status && args.status !== "all" ? `${args.status} ` : "";
      if (!finished) return { kind: "pending", text: `Looking up ${which}tasks` };
      const count = Array.isArray(result) ? result.length : 0;
      return { kind: "ok", text: `Listed ${count} ${which}task${count === 1 ? "" : "s"}` };
    }
    default:
      return { kind: finished ? "ok" : "pending", text: finished ? `Used ${name}` : `Using ${name}` };
  }
}

// "#12", "task 12", "task #12", "(id 12)": how a reply may point at a task.
const TASK_REF = /(?:#|\btask\s+#?|\bid\s*:?\s*)(\d{1,9})\b/gi;
const LIST_ITEM = /^(?:[-*\u2022]|\d+[.)])\s+/;

/** @typedef {{ id: number, label: string }} Choice */

/**
 * Task choices in a reply that asks "which one?": a question, and at least two distinct tasks.
 *
 * Tolerant by design: the question is any line that is not a list item (a task's own title may
 * end in "?"); the tasks are the references in the text, labelled by their list line.
 * @param {string | null | undefined} text
 * @returns {Choice[]}
 */
export function parseChoices(text) {
  const lines = (text || "")
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter(Boolean);
  if (!lines.some((line) => !LIST_ITEM.test(line) && line.includes("?"))) return [];
  /** @type {Map<number, string>} */
  const found = new Map();
  for (const line of lines) {
    const ids = [...new Set(Array.from(line.matchAll(TASK_REF), (match) => Number(match[1])))];
    for (const id of ids) {
      if (found.has(id)) continue;
      const item = ids.length === 1 && LIST_ITEM.test(line);
      const label = item ? line.replace(LIST_ITEM, "") : `Task #${id}`;
      found.set(id, label.length > 80 ? `${label.slice(0, 79)}\u2026` : label);
    }
  }
  return found.size >= 2 ? Array.from(found, ([id, label]) => ({ id, label })) : [];
}

/** @type {Record<string, string>} the server's reasons (lower case), as a person would put them */
const ENDED_BECAUSE = {
  "session ended": "",
  "refresh token expired": "it was not used for too long",
  "session expired, log in again": "it reached its maximum age",
  "refresh token already used": "it was renewed elsewhere",
  "could not validate credentials": "it is not valid here",
};

/**
 * What the login form says when the session ended by itself, not by this tab's Log out.
 * @param {string} reason  the server's detail or close reason ("" when unknown)
 */
export function sessionEndedNotice(reason) {
  const key = reason.trim().toLowerCase();
  const why = key in ENDED_BECAUSE ? ENDED_BECAUSE[key] : reason.trim();
  return `Your session ended${why ? ` (${why})` : ""}. Please log in again.`;
}

/** @type {[RegExp, string][]} first match wins: Edge and Opera say "Chrome" too, Chrome says "Safari" */
const BROWSERS = [
  [/\bEdg(e|A|iOS)?\//, "Edge"],
  [/\bOPR\//, "Opera"],
  [/\b(Firefox|FxiOS)\//, "Firefox"],
  [/Chrome\/|\bCriOS\//, "Chrome"],
  [/\bSafari\//, "Safari"],
];
/** @type {[RegExp, string][]} Android says "Linux", iPads may say "Macintosh" */
const SYSTEMS = [
  [/\bWindows\b/, "Windows"],
  [/\b(iPhone|iPad|iPod)\b/, "iOS"],
  [/\bAndroid\b/, "Android"],
  [/\bCrOS\b/, "ChromeOS"],
  [/\bMac OS X\b|\bMacintosh\b/, "macOS"],
  [/\bLinux\b/, "Linux"],
];

/**
 * What the session list calls this browser ("Firefox on Windows"); "" when the User-Agent says
 * too little, and the server then shows the User-Agent itself.
 * @param {string} userAgent
 */
export function deviceLabel(userAgent) {
  /** @param {[RegExp, string][]} table */
  const find = (table) => (table.find(([pattern]) => pattern.test(userAgent)) || [null, ""])[1];
  const browser = find(BROWSERS);
  const system = find(SYSTEMS);
  if (browser && system) return `${browser} on ${system}`;
  return browser || system;
}

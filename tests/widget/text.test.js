// What the widget says about tool calls, "which one?" replies and ended sessions (client_demo/widget/text.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  describeTool,
  deviceLabel,
  parseChoices,
  parseTime,
  sessionEndedNotice,
} from "../../client_demo/widget/text.js";

test("a tool call is one human line, pending then done", () => {
  assert.deepEqual(describeTool("add_task", { title: "Buy milk" }, undefined, false), {
    kind: "pending",
    text: "Adding task: Buy milk",
  });
  assert.deepEqual(describeTool("complete_task", { task_id: 4 }, { id: 4, title: "Buy milk" }, true), {
    kind: "ok",
    text: "Completed task: Buy milk",
  });
  assert.deepEqual(describeTool("list_tasks", { status: "pending" }, [{}, {}], true), {
    kind: "ok",
    text: "Listed 2 pending tasks",
  });
  assert.deepEqual(describeTool("delete_task", { task_id: 9 }, { error: "not_found", message: "No task 9" }, true), {
    kind: "error",
    text: "Could not delete task #9: No task 9",
  });
});

test("a question naming two or more tasks offers them as choices", () => {
  const reply = "Which one do you mean?\n- #12 Team meeting\n- #15 Meeting notes";
  assert.deepEqual(parseChoices(reply), [
    { id: 12, label: "#12 Team meeting" },
    { id: 15, label: "#15 Meeting notes" },
  ]);
  assert.deepEqual(parseChoices("Added task 12 and task 15."), []); // no question
  assert.deepEqual(parseChoices("Did you mean task 12?"), []); // only one task
  assert.deepEqual(parseChoices("- #3 Is it done?\n- #4 Call mom"), []); // the only "?" is a list item's title
});

test("API times without an offset are UTC", () => {
  assert.equal(parseTime("2030-01-01T10:00:00").toISOString(), "2030-01-01T10:00:00.000Z");
  assert.equal(parseTime("2030-01-01T10:00:00+02:00").toISOString(), "2030-01-01T08:00:00.000Z");
  assert.equal(parseTime("not a time"), null);
  assert.equal(parseTime(null), null);
});

test("why a session ended, in the words of the login form", () => {
  assert.equal(sessionEndedNotice("Session ended"), "Your session ended. Please log in again.");
  assert.equal(sessionEndedNotice("session ended"), "Your session ended. Please log in again."); // a close reason
  assert.equal(sessionEndedNotice(""), "Your session ended. Please log in again.");
  assert.equal(
    sessionEndedNotice("Refresh token expired"),
    "Your session ended (it was not used for too long). Please log in again.",
  );
  assert.equal(
    sessionEndedNotice("Session expired, log in again"),
    "Your session ended (it reached its maximum age). Please log in again.",
  );
  assert.equal(sessionEndedNotice("Something new"), "Your session ended (Something new). Please log in again.");
});

test("a browser's name in the session list, from its User-Agent", () => {
  const agents = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0":
      "Edge on Windows",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36":
      "Chrome on Linux",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36":
      "Chrome on Android",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1":
      "Safari on iOS",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0": "Firefox on macOS",
    "curl/8.5.0": "",
  };
  for (const [agent, label] of Object.entries(agents)) assert.equal(deviceLabel(agent), label, agent);
});

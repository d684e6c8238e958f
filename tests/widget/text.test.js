// What the widget says about tool calls and "which one?" replies (client_demo/widget/text.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeTool, parseChoices, parseTime } from "../../client_demo/widget/text.js";

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

// The reminders showing (client_demo/widget/reminders.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Reminders } from "../../client_demo/widget/reminders.js";
import { NOW, rich } from "./fixtures.js";

describe("Reminders: shown once, closed wherever they are dealt with", () => {
  const fired = (seq, t) => ({ type: "reminder", task: t, remind_at: "2026-12-01T10:59:00Z", seq });

  test("a replayed reminder is not shown again", () => {
    const reminders = new Reminders();
    assert.equal(reminders.fired(fired(5, rich(1, {})))?.seq, 5);
    assert.equal(reminders.fired(fired(5, rich(1, {}))), null);
    assert.equal(reminders.fired(fired(4, rich(2, {}))), null);
    assert.deepEqual(reminders.list().map((r) => r.task.id), [1]);
  });

  test("dismissed, snoozed, completed or deleted: it closes", () => {
    const reminders = new Reminders();
    for (const [seq, id] of [[1, 1], [2, 2], [3, 3], [4, 4]]) reminders.fired(fired(seq, rich(id, {})));
    assert.equal(reminders.dismissed(1), true);
    assert.equal(reminders.taskChanged("task.updated", rich(2, { remind_at: "2026-12-01T11:10:00Z" }), NOW), true);
    assert.equal(reminders.taskChanged("task.updated", rich(3, { completed: true }), NOW), true);
    assert.deepEqual(reminders.list().map((r) => r.task.id), [4]);
    // Renamed: still showing, with the new title.
    assert.equal(reminders.taskChanged("task.updated", rich(4, { title: "Call the dentist" }), NOW), true);
    assert.equal(reminders.list()[0].task.title, "Call the dentist");
    assert.equal(reminders.taskChanged("task.deleted", rich(4, {}), NOW), true);
    assert.deepEqual(reminders.list(), []);
    assert.equal(reminders.taskChanged("task.updated", rich(9, {}), NOW), false); // none showing
  });

  test("restored after a reload, its seq still counts", () => {
    const before = new Reminders();
    before.fired(fired(6, rich(1, {})));
    const after = new Reminders();
    after.restore(JSON.parse(JSON.stringify(before.list())));
    assert.deepEqual(after.list().map((r) => r.task.id), [1]);
    assert.equal(after.fired(fired(6, rich(1, {}))), null); // replayed: not shown twice
    assert.equal(after.fired(fired(7, rich(2, {})))?.seq, 7);
  });

  test("a completed task's reminder is not shown; clear starts over (another account)", () => {
    const reminders = new Reminders();
    assert.equal(reminders.fired(fired(8, rich(1, { completed: true }))), null);
    reminders.clear();
    assert.equal(reminders.fired(fired(2, rich(1, {})))?.seq, 2);
  });
});

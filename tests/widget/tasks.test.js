// The task list, its filter and order (client_demo/widget/tasks.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { TaskList, defaultFilter, matchesFilter, taskOrder, taskQuery } from "../../client_demo/widget/tasks.js";
import { NOW, rich, task, taskEvent } from "./fixtures.js";

const filter = (fields) => ({ ...defaultFilter(), ...fields });

describe("TaskList: the task panel's state from task.* events", () => {
  test("created, updated, deleted; listed by id with counts", () => {
    const tasks = new TaskList();
    tasks.replace([task(7, "Walk the dog"), task(2, "Buy milk", true)]);
    assert.equal(tasks.apply(taskEvent("task.created", 1, task(9, "Call mom"))), "added");
    assert.equal(tasks.apply(taskEvent("task.updated", 2, task(7, "Walk the dog", true))), "updated");
    assert.deepEqual(
      tasks.list().map((t) => [t.id, t.completed]),
      [
        [2, true],
        [7, true],
        [9, false],
      ],
    );
    assert.deepEqual(tasks.counts(), { open: 1, done: 2 });
    assert.equal(tasks.apply(taskEvent("task.deleted", 3, task(2, "Buy milk", true))), "removed");
    assert.equal(tasks.get(2), null);
    assert.deepEqual(tasks.counts(), { open: 1, done: 1 });
  });

  test("an update for a task not loaded yet adds it", () => {
    const tasks = new TaskList();
    assert.equal(tasks.apply(taskEvent("task.updated", 1, task(4, "Renew passport"))), "added");
    assert.equal(tasks.put(task(4, "Renew the passport")), "updated"); // the REST answer to a toggle
    assert.equal(tasks.get(4).title, "Renew the passport");
  });
});

describe("task filters: the REST query and the same test for live events", () => {
  test("the query string leaves the defaults out", () => {
    assert.equal(taskQuery(defaultFilter(), 500), "limit=500");
    assert.equal(
      taskQuery(filter({ status: "pending", priority: "high", tag: "work", overdue: true, q: " dentist ", sort: "due" }), 50),
      "limit=50&status=pending&priority=high&tag=work&overdue=true&q=dentist&sort=due",
    );
    assert.equal(taskQuery(filter({ sort: "priority", order: "desc" }), 5), "limit=5&sort=priority"); // its natural way
    assert.equal(taskQuery(filter({ sort: "priority", order: "asc" }), 5), "limit=5&sort=priority&order=asc");
  });

  test("each filter lets through what the server's would", () => {
    const overdue = rich(1, { due_at: "2026-11-30T10:00:00Z", priority: "high", tags: ["work"] });
    const later = rich(2, { due_at: "2026-12-09T10:00:00Z", title: "Call the Dentist", description: "teeth" });
    const done = rich(3, { due_at: "2026-11-30T10:00:00Z", completed: true, tags: ["home"] });
    const all = [overdue, later, done];
    const ids = (f) => all.filter((t) => matchesFilter(t, f, NOW)).map((t) => t.id);
    assert.deepEqual(ids(defaultFilter()), [1, 2, 3]);
    assert.deepEqual(ids(filter({ status: "pending" })), [1, 2]);
    assert.deepEqual(ids(filter({ status: "completed" })), [3]);
    assert.deepEqual(ids(filter({ priority: "high" })), [1]);
    assert.deepEqual(ids(filter({ priority: "normal" })), [2, 3]);
    assert.deepEqual(ids(filter({ tag: "home" })), [3]);
    assert.deepEqual(ids(filter({ overdue: true })), [1]); // a completed task is never overdue
    assert.deepEqual(ids(filter({ q: "dentist TEETH" })), [2]); // every word, title or description
    assert.deepEqual(ids(filter({ q: "dentist dog" })), []);
  });

  test("a task that stops matching leaves the list; one that starts joins it", () => {
    const list = new TaskList();
    list.replace([rich(1, {}), rich(2, {})]);
    const pending = filter({ status: "pending" });
    assert.deepEqual(list.list(pending, NOW).map((t) => t.id), [1, 2]);
    list.apply(taskEvent("task.updated", 1, rich(1, { completed: true })));
    assert.deepEqual(list.list(pending, NOW).map((t) => t.id), [2]);
    list.apply(taskEvent("task.created", 2, rich(7, { tags: ["garden"] })));
    assert.deepEqual(list.list(pending, NOW).map((t) => t.id), [2, 7]);
    assert.deepEqual(list.counts(list.list(pending, NOW)), { open: 2, done: 0 });
    assert.deepEqual(list.tags(), ["garden"]);
  });

  test("orders as the server does: no due time last, priority high first, then due", () => {
    const a = rich(1, { title: "banana", due_at: "2026-12-05T10:00:00Z", priority: "low" });
    const b = rich(2, { title: "Apple", due_at: null, priority: "high" });
    const c = rich(3, { title: "cherry", due_at: "2026-12-02T10:00:00Z", priority: "high" });
    const sorted = (f) => [a, b, c].sort(taskOrder(f)).map((t) => t.id);
    assert.deepEqual(sorted(filter({ sort: "created" })), [1, 2, 3]);
    assert.deepEqual(sorted(filter({ sort: "created", order: "desc" })), [3, 2, 1]);
    assert.deepEqual(sorted(filter({ sort: "due" })), [3, 1, 2]);
    assert.deepEqual(sorted(filter({ sort: "due", order: "desc" })), [1, 3, 2]);
    assert.deepEqual(sorted(filter({ sort: "priority", order: "desc" })), [3, 2, 1]);
    assert.deepEqual(sorted(filter({ sort: "title" })), [2, 1, 3]);
  });
});

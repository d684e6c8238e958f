// The widget's DOM-free state (client_demo/widget/state.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BUSY_RETRY_MS,
  ConversationList,
  EventStream,
  Outbox,
  Reminders,
  TaskList,
  Turns,
  defaultFilter,
  inView,
  matchesFilter,
  taskOrder,
  taskQuery,
  turnText,
} from "../../client_demo/widget/state.js";

const task = (id, title, completed = false) => ({
  id,
  title,
  description: null,
  completed,
  created_at: "2030-01-01T10:00:00",
  updated_at: "2030-01-01T10:00:00",
});
const taskEvent = (type, seq, t) => ({ type, task: t, seq });
const message = (fields) => ({ conversation_id: 3, created_at: "2030-01-01T10:00:00", ...fields });

// --------------------------------------------------------------------------------- the event log

describe("EventStream: seq de-duplication and order", () => {
  test("applies each seq once and moves past it", () => {
    const seen = [];
    const events = new EventStream({ onSeq: (seq) => seen.push(seq) });
    assert.equal(events.receive(taskEvent("task.created", 5, task(1, "a"))), "apply");
    assert.equal(events.receive(taskEvent("task.updated", 6, task(1, "b"))), "apply");
    assert.equal(events.receive(taskEvent("task.updated", 6, task(1, "b"))), "drop");
    assert.equal(events.receive(taskEvent("task.updated", 4, task(1, "c"))), "drop");
    assert.equal(events.lastSeq, 6);
    assert.deepEqual(seen, [5, 6]); // stored for the next resume
  });

  test("a replay that overlaps what was applied adds only what is new", () => {
    const events = new EventStream({ lastSeq: 7 });
    const verdicts = [6, 7, 8, 9].map((seq) => events.receive(taskEvent("task.updated", seq, task(1, "x"))));
    assert.deepEqual(verdicts, ["drop", "drop", "apply", "apply"]);
    assert.equal(events.lastSeq, 9);
  });

  test("an ack does not count: its seq belongs to the message event still to come", () => {
    const events = new EventStream({ lastSeq: 41 });
    const ack = { type: "ack", client_msg_id: "w-1", conversation_id: 3, message_id: 17, turn_id: "t", seq: 42 };
    assert.equal(events.receive(ack), "apply");
    assert.equal(events.lastSeq, 41);
    const userMessage = message({ id: 17, role: "user", content: "hi" });
    assert.equal(events.receive({ type: "message", conversation_id: 3, message: userMessage, seq: 42 }), "apply");
    assert.equal(events.lastSeq, 42);
  });

  test("frames without a seq (deltas, pong, errors) always apply, even while holding", () => {
    const events = new EventStream({ lastSeq: 10 });
    events.hold();
    assert.equal(events.receive({ type: "delta", turn_id: "t", conversation_id: 3, offset: 0, text: "a" }), "apply");
    assert.equal(events.receive({ type: "pong" }), "apply");
    assert.equal(events.lastSeq, 10);
  });

  test("hello sets the start only for a tab that has seen nothing", () => {
    const fresh = new EventStream();
    fresh.hello(30);
    assert.equal(fresh.lastSeq, 30);
    const resumed = new EventStream({ lastSeq: 12 });
    resumed.hello(30); // the replay after 12 follows
    assert.equal(resumed.lastSeq, 12);
  });

  test("events that arrive during a snapshot are held, then released in order", () => {
    const events = new EventStream({ lastSeq: 1 });
    events.hold();
    const frames = [2, 3, 3, 4].map((seq) => taskEvent("task.updated", seq, task(1, `v${seq}`)));
    assert.deepEqual(
      frames.map((frame) => events.receive(frame)),
      ["hold", "hold", "drop", "hold"],
    );
    assert.equal(events.lastSeq, 4); // a reconnect meanwhile resumes after what is held
    assert.deepEqual(
      events.release().map((frame) => frame.seq),
      [2, 3, 4],
    );
    assert.equal(events.holding, false);
    assert.deepEqual(events.release(), []);
    assert.equal(events.receive(taskEvent("task.updated", 5, task(1, "v5"))), "apply");
  });

  test("a resync moves the position back to the server's", () => {
    const events = new EventStream({ lastSeq: 10_000 });
    events.moveTo(40);
    assert.equal(events.receive(taskEvent("task.created", 41, task(2, "new"))), "apply");
  });
});

// --------------------------------------------------------------------------------- the outbox

/** An outbox whose saves are recorded, as sessionStorage would keep them. */
function recordedOutbox(entries = []) {
  const saves = [];
  const outbox = new Outbox(entries, (saved) => saves.push(structuredClone(saved)));
  return { outbox, saves };
}
const idle = { userId: 1, now: 0, busy: () => false };
const error = (code, ref) => ({ type: "error", code, detail: `refused: ${code}`, ref });
const ackFor = (entry, fields = {}) => ({
  type: "ack",
  client_msg_id: entry.client_msg_id,
  conversation_id: entry.conversation_id ?? 9,
  message_id: 100,
  turn_id: "t1",
  seq: 50,
  ...fields,
});

describe("Outbox", () => {
  test("a message typed while offline is queued and kept for a reload", () => {
    const { outbox, saves } = recordedOutbox();
    const first = outbox.add({ message: "Add milk", conversationId: 3, draft: "d-1", userId: 1 });
    const second = outbox.add({ message: "Add eggs", conversationId: 3, draft: "d-1", userId: 1 });
    assert.match(first.client_msg_id, /^w-[0-9a-f]{24}$/);
    assert.notEqual(first.client_msg_id, second.client_msg_id);
    assert.equal(first.draft, null); // an existing conversation needs no draft key
    assert.deepEqual(
      saves.at(-1).map((entry) => entry.message),
      ["Add milk", "Add eggs"],
    );

    const reloaded = new Outbox(saves.at(-1));
    assert.equal(reloaded.next(idle).entry.client_msg_id, first.client_msg_id);
  });

  test("a message is sent once: one in flight, removed by its ack", () => {
    const { outbox, saves } = recordedOutbox();
    const entry = outbox.add({ message: "Add milk", conversationId: 3, draft: "d-1", userId: 1 });
    const queued = outbox.add({ message: "Add eggs", conversationId: 4, draft: "d-1", userId: 1 });

    assert.equal(outbox.next(idle).entry, entry);
    outbox.sent(entry);
    assert.equal(outbox.next(idle).entry, null, "nothing else goes before the ack");

    assert.equal(outbox.ack(ackFor(entry)), entry);
    assert.equal(outbox.inflight, null);
    assert.deepEqual(
      saves.at(-1).map((saved) => saved.client_msg_id),
      [queued.client_msg_id],
    );
    assert.equal(outbox.next(idle).entry, queued);

    // The server answers a retried id with the same ack again: nothing left to remove.
    assert.equal(outbox.ack(ackFor(entry)), null);
    assert.equal(outbox.entries.length, 1);
  });

  test("no ack in time: the same message goes again with the same client_msg_id", () => {
    const { outbox } = recordedOutbox();
    const entry = outbox.add({ message: "Add milk", conversationId: 3, draft: "d-1", userId: 1 });
    const id = entry.client_msg_id;
    outbox.sent(entry);
    outbox.timedOut();
    const again = outbox.next(idle).entry;
    assert.equal(again, entry);
    assert.equal(again.client_msg_id, id);
    assert.equal(outbox.entries.length, 1);
  });

  test("an ack for a message sent earlier does not release the one in flight", () => {
    const { outbox } = recordedOutbox();
    const earlier = outbox.add({ message: "one", conversationId: 3, draft: "d-1", userId: 1 });
    const later = outbox.add({ message: "two", conversationId: 4, draft: "d-1", userId: 1 });
    outbox.sent(earlier);
    outbox.timedOut();
    outbox.sent(outbox.next({ ...idle, busy: (id) => id === 3 }).entry);
    assert.equal(outbox.inflight, later.client_msg_id);
    outbox.ack(ackFor(earlier));
    assert.equal(outbox.inflight, later.client_msg_id);
  });

  test("each conversation keeps its order and waits while a turn runs there", () => {
    const { outbox } = recordedOutbox();
    const busyOne = outbox.add({ message: "in 3", conversationId: 3, draft: "d-1", userId: 1 });
    const behind = outbox.add({ message: "in 3 again", conversationId: 3, draft: "d-1", userId: 1 });
    const other = outbox.add({ message: "in 4", conversationId: 4, draft: "d-1", userId: 1 });
    const busy = (id) => id === 3;
    assert.equal(outbox.next({ ...idle, busy }).entry, other);
    outbox.entries = outbox.entries.filter((entry) => entry !== other);
    assert.equal(outbox.next({ ...idle, busy }).entry, null);
    assert.equal(outbox.next(idle).entry, busyOne);
    assert.notEqual(outbox.next(idle).entry, behind);
  });

  test("the first message of a new conversation takes the ones queued behind it there", () => {
    const { outbox, saves } = recordedOutbox();
    const first = outbox.add({ message: "Add milk", conversationId: null, draft: "d-1", userId: 1 });
    const follower = outbox.add({ message: "and eggs", conversationId: null, draft: "d-1", userId: 1 });
    const elsewhere = outbox.add({ message: "other draft", conversationId: null, draft: "d-2", userId: 1 });
    assert.equal(first.draft, "d-1");

    outbox.sent(first);
    outbox.ack(ackFor(first, { conversation_id: 9 }));
    assert.equal(follower.conversation_id, 9);
    assert.equal(elsewhere.conversation_id, null);
    assert.equal(saves.at(-1)[0].conversation_id, 9);
  });

  test("busy or rate limited: retried after a pause; anything else is final", () => {
    const { outbox } = recordedOutbox();
    const entry = outbox.add({ message: "Add milk", conversationId: 3, draft: "d-1", userId: 1 });
    outbox.sent(entry);
    const busy = outbox.refused(error("busy", entry.client_msg_id), 1000);
    assert.deepEqual(busy, { entry, retry: true });
    assert.equal(outbox.inflight, null);
    assert.deepEqual(outbox.next({ ...idle, now: 1000 }), { entry: null, wakeAt: 1000 + BUSY_RETRY_MS });
    assert.equal(outbox.next({ ...idle, now: 1000 + BUSY_RETRY_MS }).entry, entry);

    const refused = outbox.refused(error("invalid_frame", entry.client_msg_id), 0);
    assert.deepEqual(refused, { entry, retry: false });
    assert.deepEqual(outbox.entries, []);
    assert.equal(outbox.refused(error("not_found", null), 0), null); // about a turn, not a message
  });

  test("only the logged-in user's messages go out", () => {
    const { outbox } = recordedOutbox();
    outbox.add({ message: "theirs", conversationId: 3, draft: "d-1", userId: 2 });
    const mine = outbox.add({ message: "mine", conversationId: 5, draft: "d-1", userId: 1 });
    assert.equal(outbox.next(idle).entry, mine);
    outbox.keepUser(1);
    assert.deepEqual(outbox.entries, [mine]);
  });

  test("inView: by conversation, or by draft key for a new one", () => {
    const entry = { client_msg_id: "w-1", conversation_id: null, draft: "d-1", message: "x", userId: 1 };
    assert.equal(inView(entry, null, "d-1"), true);
    assert.equal(inView(entry, null, "d-2"), false);
    assert.equal(inView({ ...entry, conversation_id: 3, draft: null }, 3, "d-1"), true);
    assert.equal(inView({ ...entry, conversation_id: 3, draft: null }, null, "d-1"), false);
  });
});

// --------------------------------------------------------------------------------- turns

const start = { type: "turn.start", turn_id: "t1", conversation_id: 3, seq: 1 };
const delta = (offset, text) => ({ type: "delta", turn_id: "t1", conversation_id: 3, offset, text });
const toolCall = (callId, name) => ({
  type: "tool.call",
  turn_id: "t1",
  conversation_id: 3,
  call_id: callId,
  name,
  arguments: { title: "Milk" },
  seq: 2,
});
const toolResult = (callId, result) => ({
  type: "tool.result",
  turn_id: "t1",
  conversation_id: 3,
  call_id: callId,
  result,
  seq: 3,
});
const turnEnd = (status, fields = {}) => ({
  type: "turn.end",
  turn_id: "t1",
  conversation_id: 3,
  status,
  message_id: 19,
  seq: 9,
  ...fields,
});

describe("Turns: a reply assembled from its frames", () => {
  test("deltas are placed by offset: a repeated one adds nothing", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    assert.equal(turns.delta(delta(0, "Added ")), turn);
    assert.equal(turns.delta(delta(0, "Added ")), null);
    assert.equal(turns.delta(delta(3, "ed \"Milk\"")), turn); // overlaps: only the new part counts
    assert.equal(turnText(turn), 'Added "Milk"');
  });

  test("offsets count code points, not UTF-16 units", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    turns.delta(delta(0, "Done \u{1F44D}"));
    turns.delta(delta(6, "!"));
    assert.equal(turnText(turn), "Done \u{1F44D}!");
  });

  test("a missed delta leaves a gap that later deltas cannot fill", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    turns.delta(delta(0, "Hello"));
    assert.equal(turns.delta(delta(6, "world")), turn); // the character at offset 5 never came
    assert.equal(turn.gap, true);
    assert.equal(turnText(turn), "Hello \u2026");
    assert.equal(turns.delta(delta(5, " there")), null);
  });

  test("the final message replaces whatever was streamed", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    turns.delta(delta(0, "Hel"));
    turns.delta(delta(9, "gap"));
    const final = message({ id: 19, role: "assistant", content: "Hello, all of it.", status: "done", turn_id: "t1" });
    assert.equal(turns.message(final), turn);
    assert.equal(turnText(turn), "Hello, all of it.");
    assert.equal(turns.delta(delta(3, "lo")), null);
    assert.equal(turnText(turn), "Hello, all of it.");
    // The user's message and unknown turns are not a turn's reply.
    assert.equal(turns.message(message({ id: 18, role: "user", content: "hi", turn_id: "t1" })), null);
    assert.equal(turns.message(message({ id: 20, role: "assistant", content: "?", turn_id: "t9" })), null);
  });

  test("tool calls, then their results, in call order", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    turns.toolCall(toolCall("c1", "add_task"));
    turns.toolCall(toolCall("c2", "list_tasks"));
    turns.toolResult(toolResult("c1", { id: 4 }));
    assert.deepEqual([...turn.tools.keys()], ["c1", "c2"]);
    const added = { name: "add_task", arguments: { title: "Milk" }, result: { id: 4 }, done: true };
    assert.deepEqual(turn.tools.get("c1"), added);
    assert.equal(turn.tools.get("c2").done, false);
    assert.equal(turns.toolResult(toolResult("c9", null)), null);
  });

  test("one running turn per conversation until its turn.end", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    assert.equal(turns.runningIn(3), turn);
    assert.equal(turns.runningIn(4), null);
    assert.equal(turns.runningIn(null), null);
    const ended = turns.end(turnEnd("done"));
    assert.equal(ended, turn);
    assert.equal(turn.status, "done");
    assert.equal(turns.runningIn(3), null);
    assert.equal(turns.size, 0);
  });

  test("cancel: Stop is pressed, the turn ends cancelled with its partial reply", () => {
    const turns = new Turns();
    const turn = turns.start(start);
    turns.delta(delta(0, "Echo: lorem"));
    assert.equal(turns.cancel("t1"), turn);
    assert.equal(turn.cancelling, true);
    turns.cancelRefused(); // the server knew no such turn: Stop may be pressed again
    assert.equal(turn.cancelling, false);
    turns.cancel("t1");
    turns.message(message({ id: 19, role: "assistant", content: "Echo: lorem", status: "cancelled", turn_id: "t1" }));
    const ended = turns.end(turnEnd("cancelled"));
    assert.equal(ended.status, "cancelled");
    assert.equal(turnText(ended), "Echo: lorem");
    assert.equal(turns.cancel("t1"), null);
  });

  test("failed: the reason is kept for the notice", () => {
    const turns = new Turns();
    turns.start(start);
    const ended = turns.end(turnEnd("failed", { message_id: null, reason: "model unavailable" }));
    assert.equal(ended.status, "failed");
    assert.equal(ended.reason, "model unavailable");
    assert.equal(turns.end(turnEnd("done")), null); // ended already
  });
});

// --------------------------------------------------------------------------------- tasks

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

// --------------------------------------------------------------------------------- conversations

describe("ConversationList", () => {
  const conversation = (id, updated) => ({ id, title: `c${id}`, created_at: updated, updated_at: updated });

  test("new activity moves a conversation up and marks it unread", () => {
    const list = new ConversationList();
    list.merge([conversation(2, "2030-01-02T10:00:00"), conversation(1, "2030-01-01T10:00:00")], () => false);
    assert.equal(list.touch(1, "2030-01-03T10:00:00Z", true), true);
    assert.deepEqual(
      list.items.map((c) => [c.id, c.unread]),
      [
        [1, true],
        [2, false],
      ],
    );
    assert.equal(list.touch(5, "2030-01-03T10:00:00Z", true), false);
    list.markRead(1);
    assert.equal(list.get(1).unread, false);
  });

  test("a refresh keeps the unread marks it knows", () => {
    const list = new ConversationList();
    list.merge([conversation(1, "2030-01-01T10:00:00")], () => false);
    list.touch(1, "2030-01-01T11:00:00", true);
    list.add(3, "Add milk", "2030-01-01T12:00:00Z");
    assert.equal(list.items[0].id, 3);
    const fromServer = [
      conversation(3, "2030-01-01T12:00:00"),
      conversation(2, "2030-01-01T11:30:00"),
      conversation(1, "2030-01-01T11:00:00"),
    ];
    list.merge(fromServer, (id) => id !== 3); // new ones are unread unless on screen
    assert.deepEqual(
      list.items.map((c) => [c.id, c.unread]),
      [
        [3, false],
        [2, true],
        [1, true],
      ],
    );
    list.remove(2);
    assert.equal(list.has(2), false);
  });
});

test("outbox: a refusal with retry_after is retried when the server says", () => {
  const { outbox } = recordedOutbox();
  const entry = outbox.add({ message: "Add milk", conversationId: 3, draft: "d-1", userId: 1 });
  outbox.sent(entry);
  const refusal = { ...error("rate_limited", entry.client_msg_id), retry_after: 7 };
  const result = outbox.refused(refusal, 1000);
  assert.ok(result && result.retry);
  assert.equal(entry.retryAt, 1000 + 7000);
  const overloaded = outbox.refused(error("overloaded", entry.client_msg_id), 2000);
  assert.ok(overloaded && overloaded.retry);
});

// --------------------------------------------------------------------------------- filters

const NOW = new Date("2026-12-01T11:00:00Z");
const rich = (id, fields) => ({ ...task(id, `task ${id}`), priority: "normal", tags: [], due_at: null, ...fields });
const filter = (fields) => ({ ...defaultFilter(), ...fields });

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

// --------------------------------------------------------------------------------- reminders

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

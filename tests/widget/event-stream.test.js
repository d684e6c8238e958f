// The event log: seq de-duplication and events held during a snapshot (client_demo/widget/event-stream.js),
// run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { EventStream } from "../../client_demo/widget/event-stream.js";
import { message, task, taskEvent } from "./fixtures.js";

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

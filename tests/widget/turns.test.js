// Replies assembled from their frames (client_demo/widget/turns.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Turns, turnText } from "../../client_demo/widget/turns.js";
import { message } from "./fixtures.js";

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

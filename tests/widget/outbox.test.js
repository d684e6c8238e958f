// The outbox of unsent messages (client_demo/widget/outbox.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { BUSY_RETRY_MS, Outbox, inView, randomId } from "../../client_demo/widget/outbox.js";

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

test("randomId: its prefix and 24 hex digits, never the same twice", () => {
  const ids = new Set(Array.from({ length: 100 }, () => randomId("w-")));
  assert.equal(ids.size, 100);
  for (const id of ids) assert.match(id, /^w-[0-9a-f]{24}$/);
});

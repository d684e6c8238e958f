// The conversation list (client_demo/widget/conversations.js), run by `node --test` (npm test).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { ConversationList } from "../../client_demo/widget/conversations.js";

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

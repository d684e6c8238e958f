// Due times in words, in the user's zone, and repeating rules (client_demo/widget/due.js).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { Clock, describeDue, describeRecurrence, span, usableZone } from "../../client_demo/widget/due.js";

// Tuesday 1 December 2026, 12:00 in Berlin (11:00 UTC).
const now = new Date("2026-12-01T11:00:00Z");
const berlin = { now, zone: "Europe/Berlin" };
const due = (dueAt, completed = false) => describeDue({ due_at: dueAt, completed }, berlin);

describe("describeDue", () => {
  test("soon: a countdown", () => {
    assert.equal(due("2026-12-01T11:20:00Z").text, "due in 20 min");
    assert.equal(due("2026-12-01T13:00:00Z").text, "due in 2 h");
    assert.equal(due("2026-12-01T11:00:30Z").text, "due in 1 min"); // never "in 0 min"
  });

  test("later: the day and the time in the user's zone", () => {
    assert.equal(due("2026-12-01T20:00:00Z").text, "due today 21:00");
    assert.equal(due("2026-12-02T16:00:00Z").text, "due tomorrow 17:00");
    assert.equal(due("2026-12-04T08:30:00Z").text, "due Fri 09:30");
    assert.equal(due("2026-12-24T17:00:00Z").text, "due 24 Dec 18:00");
    assert.equal(due("2027-01-05T08:00:00Z").text, "due 5 Jan 2027 09:00");
  });

  test("the calendar day is the zone's, not UTC's", () => {
    // 23:30 UTC on the 1st is already the 2nd in Tokyo, still the 1st in New York.
    const late = { due_at: "2026-12-01T23:30:00Z", completed: false };
    assert.equal(describeDue(late, { now, zone: "Asia/Tokyo" })?.text, "due tomorrow 08:30");
    assert.equal(describeDue(late, { now, zone: "America/New_York" })?.text, "due today 18:30");
  });

  test("past due: overdue, unless completed", () => {
    const overdue = due("2026-11-28T09:00:00Z");
    assert.deepEqual(
      { text: overdue?.text, overdue: overdue?.overdue },
      { text: "overdue by 3 days", overdue: true },
    );
    assert.equal(due("2026-12-01T10:00:00Z")?.text, "overdue by 1 h");
    assert.equal(due("2026-11-30T10:00:00Z")?.text, "overdue by 1 day");
    const done = due("2026-11-28T09:00:00Z", true);
    assert.deepEqual({ text: done?.text, overdue: done?.overdue }, { text: "was due 28 Nov 10:00", overdue: false });
  });

  test("the full date names the zone; no due time, nothing", () => {
    assert.equal(due("2026-12-02T16:00:00Z")?.full, "Wed, 2 Dec 2026, 17:00 (Europe/Berlin)");
    assert.equal(describeDue({ due_at: null, completed: false }, berlin), null);
  });

  test("a zone the browser does not know falls back to UTC", () => {
    assert.equal(usableZone("Mars/Olympus_Mons"), "UTC");
    assert.equal(usableZone("Europe/Berlin"), "Europe/Berlin");
    const task = { due_at: "2026-12-02T16:00:00Z", completed: false };
    assert.equal(describeDue(task, { now, zone: "Mars/Olympus_Mons" })?.text, "due tomorrow 16:00");
  });

  test("spans round down to their largest unit", () => {
    assert.equal(span(59 * 60_000), "59 min");
    assert.equal(span(23 * 3600_000 + 59 * 60_000), "23 h");
    assert.equal(span(2 * 86400_000 + 3600_000), "2 days");
  });
});

test("describeRecurrence reads the server's RRULE subset", () => {
  assert.equal(describeRecurrence("FREQ=DAILY"), "repeats daily");
  assert.equal(describeRecurrence("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH"), "repeats every 2 weeks on Mon, Thu");
  assert.equal(describeRecurrence("FREQ=MONTHLY;BYMONTHDAY=15"), "repeats monthly on day 15");
  assert.equal(describeRecurrence("FREQ=SECONDLY"), "repeats");
  assert.equal(describeRecurrence(null), "");
});

test("the clock reads now in the user's zone; an unknown zone falls back to UTC", () => {
  const clock = new Clock("Europe/Paris");
  const before = Date.now();
  const { now, zone } = clock.read();
  assert.equal(zone, "Europe/Paris");
  assert.ok(now.getTime() >= before && now.getTime() <= Date.now());
  clock.setZone("Mars/Olympus_Mons");
  assert.equal(clock.read().zone, "UTC");
  clock.setZone("Asia/Tokyo");
  assert.equal(clock.read().zone, "Asia/Tokyo");
  assert.equal(new Clock("Nowhere/Atlantis").zone, "UTC");
});

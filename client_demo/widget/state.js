// @ts-check
/* The widget's state, free of the DOM (so `node --test` can run it): where the user's event
 * log stands, the outbox of unsent messages, the turns being streamed, the task list and the
 * conversation list. Each class changes only its own data and says what changed; drawing it is
 * render.js's job, and talking to the server connection.js's and api.js's.
 */

import { parseTime } from "./text.js";

/** @typedef {import("./protocol.js").ServerFrame} ServerFrame */
/** @typedef {import("./protocol.js").Message} Message */
/** @typedef {import("./protocol.js").Task} Task */
/** @typedef {import("./protocol.js").Conversation} Conversation */
/** @typedef {import("./protocol.js").TurnStatus} TurnStatus */

export const BUSY_RETRY_MS = 1500;

/** @param {string} prefix */
export function randomId(prefix) {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes); // unlike randomUUID, available outside secure contexts too
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// ------------------------------------------------------------------------------- the event log

/**
 * What to do with an arriving frame: drop it (seen already), hold it (until a snapshot is in), or apply it.
 * @typedef {"drop" | "hold" | "apply"} Verdict
 */

/** The highest seq seen: events arrive in seq order, a replay may overlap what was already applied. */
export class EventStream {
  /** @type {ServerFrame[]} */
  #held = [];

  /** @param {{ lastSeq?: number | null, onSeq?: (seq: number) => void }} [options] */
  constructor({ lastSeq = null, onSeq = () => {} } = {}) {
    /** The highest seq applied or held; `null` before the first `hello`. Resumes start after it. */
    this.lastSeq = lastSeq;
    /** True while a REST snapshot loads: events are held, then applied on top of it. */
    this.holding = false;
    this.onSeq = onSeq;
  }

  /** @param {ServerFrame} frame @returns {Verdict} */
  receive(frame) {
    // An ack carries the seq of its `message` event, which is still to come: it must not count.
    if (!("seq" in frame) || typeof frame.seq !== "number" || frame.type === "ack") return "apply";
    if (this.lastSeq !== null && frame.seq <= this.lastSeq) return "drop";
    this.moveTo(frame.seq);
    if (!this.holding) return "apply";
    this.#held.push(frame);
    return "hold";
  }

  /**
   * A new socket said where the log stands: a tab that has seen nothing starts there.
   * @param {number} lastSeq
   */
  hello(lastSeq) {
    if (this.lastSeq === null) this.moveTo(lastSeq);
  }

  /** @param {number} seq */
  moveTo(seq) {
    this.lastSeq = seq;
    this.onSeq(seq);
  }

  hold() {
    this.holding = true;
  }

  /**
   * Stop holding; the frames held meanwhile, in the order they arrived.
   * @returns {ServerFrame[]}
   */
  release() {
    const held = this.#held;
    this.#held = [];
    this.holding = false;
    return held;
  }
}

// ------------------------------------------------------------------------------- the outbox

/**
 * A message the server has not acknowledged yet. Field names are stored in sessionStorage as they
 * are (a reload keeps the queue), so they stay as they were.
 * @typedef {object} OutboxEntry
 * @property {string} client_msg_id  made once: every retry of this message reuses it
 * @property {number | null} conversation_id  null: the first message(s) of a new conversation
 * @property {string | null} draft  the new conversation's draft key (when conversation_id is null)
 * @property {string} message
 * @property {number} userId
 * @property {number} [retryAt]  epoch ms before which it must not be sent again (the server was busy)
 */

/**
 * @typedef {object} Sendable
 * @property {OutboxEntry | null} entry  the message to send now, if any
 * @property {number | null} wakeAt  when a message held back for a retry becomes sendable
 */

/** Unacknowledged messages, oldest first; one in flight at a time, in order per conversation. */
export class Outbox {
  /**
   * @param {OutboxEntry[]} [entries]  as saved before (a reload)
   * @param {(entries: OutboxEntry[]) => void} [save]  called after every change worth keeping
   */
  constructor(entries = [], save = () => {}) {
    /** @type {OutboxEntry[]} */
    this.entries = entries;
    /** @type {string | null} the client_msg_id sent and not acked yet */
    this.inflight = null;
    this.save = save;
  }

  /**
   * @param {{ message: string, conversationId: number | null, draft: string, userId: number }} message
   * @returns {OutboxEntry}
   */
  add({ message, conversationId, draft, userId }) {
    const entry = {
      client_msg_id: randomId("w-"),
      conversation_id: conversationId,
      draft: conversationId === null ? draft : null,
      message,
      userId,
    };
    this.entries.push(entry);
    this.save(this.entries);
    return entry;
  }

  /**
   * Another account logs in on this tab: only its own messages may go out.
   * @param {number} userId
   */
  keepUser(userId) {
    this.entries = this.entries.filter((entry) => entry.userId === userId);
    this.save(this.entries);
  }

  clear() {
    this.entries = [];
    this.inflight = null;
  }

  /** @param {string} clientMsgId */
  find(clientMsgId) {
    return this.entries.find((entry) => entry.client_msg_id === clientMsgId) || null;
  }

  /**
   * The oldest message that may go now. Each conversation's messages keep their order, and one
   * whose conversation runs a turn waits for its `turn.end` (one turn at a time per conversation).
   * @param {{ userId: number, now: number, busy: (conversationId: number) => boolean }} context
   * @returns {Sendable}
   */
  next({ userId, now, busy }) {
    if (this.inflight !== null) return { entry: null, wakeAt: null };
    const blocked = new Set();
    /** @type {number | null} */
    let wakeAt = null;
    for (const entry of this.entries) {
      if (entry.userId !== userId) continue;
      const lane = entry.conversation_id !== null ? `c${entry.conversation_id}` : `d${entry.draft}`;
      if (blocked.has(lane)) continue;
      if (entry.conversation_id !== null && busy(entry.conversation_id)) {
        blocked.add(lane);
        continue;
      }
      if (entry.retryAt && entry.retryAt > now) {
        blocked.add(lane);
        wakeAt = Math.min(wakeAt === null ? entry.retryAt : wakeAt, entry.retryAt);
        continue;
      }
      return { entry, wakeAt: null };
    }
    return { entry: null, wakeAt };
  }

  /** @param {OutboxEntry} entry */
  sent(entry) {
    this.inflight = entry.client_msg_id;
  }

  /** No ack in time: the same message, with the same client_msg_id, may go again. */
  timedOut() {
    this.inflight = null;
  }

  /**
   * The server committed a message: it leaves the outbox. The first message of a new
   * conversation created it, so the messages queued behind it now go there.
   * @param {import("./protocol.js").AckFrame} frame
   * @returns {OutboxEntry | null} the entry acknowledged (null: not ours, or acked before)
   */
  ack(frame) {
    if (this.inflight === frame.client_msg_id) this.inflight = null;
    const entry = this.find(frame.client_msg_id);
    if (!entry) return null;
    this.entries = this.entries.filter((other) => other !== entry);
    if (entry.conversation_id === null) {
      for (const other of this.entries) {
        if (other.draft === entry.draft && other.conversation_id === null) {
          other.conversation_id = frame.conversation_id;
        }
      }
    }
    this.save(this.entries);
    return entry;
  }

  /**
   * The server refused a message (`error` with `ref`). A busy conversation, a rate limit or an
   * overloaded server is retried after `retry_after` (or shortly); anything else is final and the
   * message leaves the outbox.
   * @param {import("./protocol.js").ErrorFrame} frame
   * @param {number} now
   * @returns {{ entry: OutboxEntry, retry: boolean } | null}  null: the error is not about a queued message
   */
  refused(frame, now) {
    const entry = frame.ref ? this.find(frame.ref) : null;
    if (!entry) return null;
    if (this.inflight === entry.client_msg_id) this.inflight = null;
    if (frame.code === "busy" || frame.code === "rate_limited" || frame.code === "overloaded") {
      // A turn runs there, or a budget is spent: try again when the server says (or shortly).
      entry.retryAt = now + (frame.retry_after ? frame.retry_after * 1000 : BUSY_RETRY_MS);
      return { entry, retry: true };
    }
    this.entries = this.entries.filter((other) => other !== entry);
    this.save(this.entries);
    return { entry, retry: false };
  }
}

/**
 * Whether a queued message belongs in the conversation on screen.
 * @param {OutboxEntry} entry
 * @param {number | null} conversationId  null: a new conversation, known by its draft key
 * @param {string} draftKey
 */
export function inView(entry, conversationId, draftKey) {
  if (entry.conversation_id !== null) return entry.conversation_id === conversationId;
  return conversationId === null && entry.draft === draftKey;
}

// ------------------------------------------------------------------------------- turns

/**
 * @typedef {object} ToolCallState
 * @property {string} name
 * @property {unknown} arguments
 * @property {unknown} result
 * @property {boolean} done
 */

/**
 * A reply being assembled.
 * @typedef {object} Turn
 * @property {string} id
 * @property {number} conversationId
 * @property {string[]} text  the reply so far, in code points (delta offsets count code points)
 * @property {boolean} gap  a delta was missed: only the final `message` can tell the whole reply
 * @property {boolean} cancelling  `cancel` was sent
 * @property {Map<string, ToolCallState>} tools  by call_id, in call order
 * @property {Message | null} final  the persisted reply, once its `message` event came
 * @property {TurnStatus | null} status  set by `turn.end`
 * @property {string} reason  why it failed, from `turn.end`
 */

/**
 * The text to show for a turn: the final message replaces whatever was streamed.
 * @param {Turn} turn
 */
export function turnText(turn) {
  if (turn.final) return turn.final.content;
  return turn.text.join("") + (turn.gap ? " \u2026" : "");
}

/** Running turns by turn_id, assembled from `turn.start`, `delta`, `tool.*`, `message` and `turn.end`. */
export class Turns {
  /** @type {Map<string, Turn>} */
  #turns = new Map();

  get size() {
    return this.#turns.size;
  }

  /** @param {string} turnId */
  get(turnId) {
    return this.#turns.get(turnId) || null;
  }

  /** @returns {IterableIterator<Turn>} */
  [Symbol.iterator]() {
    return this.#turns.values();
  }

  /**
   * The turn running in a conversation (one at a time per conversation), if any.
   * @param {number | null} conversationId
   */
  runningIn(conversationId) {
    for (const turn of this.#turns.values()) if (turn.conversationId === conversationId) return turn;
    return null;
  }

  /** @param {import("./protocol.js").TurnStartFrame} frame @returns {Turn} */
  start(frame) {
    /** @type {Turn} */
    const turn = {
      id: frame.turn_id,
      conversationId: frame.conversation_id,
      text: [],
      gap: false,
      cancelling: false,
      tools: new Map(),
      final: null,
      status: null,
      reason: "",
    };
    this.#turns.set(turn.id, turn);
    return turn;
  }

  /**
   * Place a chunk at its offset: a repeated delta adds nothing, a missed one leaves a gap that
   * only the final `message` fills (a reconnect mid-turn).
   * @param {import("./protocol.js").DeltaFrame} frame
   * @returns {Turn | null} the turn, if its text changed
   */
  delta(frame) {
    const turn = this.#turns.get(frame.turn_id);
    if (!turn || turn.gap || turn.final) return null;
    const chunk = Array.from(frame.text);
    const have = turn.text.length;
    if (frame.offset > have) {
      turn.gap = true;
    } else if (frame.offset + chunk.length > have) {
      turn.text.push(...chunk.slice(have - frame.offset));
    } else {
      return null;
    }
    return turn;
  }

  /** @param {import("./protocol.js").ToolCallFrame} frame @returns {Turn | null} */
  toolCall(frame) {
    const turn = this.#turns.get(frame.turn_id);
    if (!turn) return null;
    turn.tools.set(frame.call_id, { name: frame.name, arguments: frame.arguments, result: undefined, done: false });
    return turn;
  }

  /** @param {import("./protocol.js").ToolResultFrame} frame @returns {Turn | null} */
  toolResult(frame) {
    const turn = this.#turns.get(frame.turn_id);
    const call = turn && turn.tools.get(frame.call_id);
    if (!turn || !call) return null;
    call.result = frame.result;
    call.done = true;
    return turn;
  }

  /**
   * The persisted reply of a running turn: it replaces the streamed text.
   * @param {Message} message
   * @returns {Turn | null}
   */
  message(message) {
    const turn = message.role === "assistant" && message.turn_id ? this.#turns.get(message.turn_id) : undefined;
    if (!turn) return null;
    turn.final = message;
    return turn;
  }

  /** @param {string} turnId @returns {Turn | null} */
  cancel(turnId) {
    const turn = this.#turns.get(turnId);
    if (!turn) return null;
    turn.cancelling = true;
    return turn;
  }

  /** The server knows no such turn any more (`not_found`): Stop may be pressed again. */
  cancelRefused() {
    for (const turn of this.#turns.values()) turn.cancelling = false;
  }

  /** @param {import("./protocol.js").TurnEndFrame} frame @returns {Turn | null} the turn that ended */
  end(frame) {
    const turn = this.#turns.get(frame.turn_id);
    this.#turns.delete(frame.turn_id);
    if (!turn) return null;
    turn.status = frame.status;
    turn.reason = frame.reason || "";
    return turn;
  }

  clear() {
    this.#turns.clear();
  }
}

// ------------------------------------------------------------------------------- tasks

/** @typedef {"added" | "updated" | "removed"} TaskChange */
/** @typedef {"created" | "due" | "priority" | "title"} TaskSort */

/**
 * What the task panel shows: the REST list's filters and order (README "REST API", tasks).
 * @typedef {object} TaskFilter
 * @property {"all" | "pending" | "completed"} status
 * @property {"" | import("./protocol.js").Priority} priority  "" any
 * @property {string} tag  "" any
 * @property {boolean} overdue  only pending tasks past their due time
 * @property {string} q  words to find in title and description ("" none)
 * @property {TaskSort} sort
 * @property {"asc" | "desc"} order
 */

/** @type {Record<TaskSort, "asc" | "desc">} each sort's natural direction, as the server has it */
export const DEFAULT_ORDER = { created: "asc", due: "asc", priority: "desc", title: "asc" };

/** @returns {TaskFilter} everything, oldest first */
export function defaultFilter() {
  return { status: "all", priority: "", tag: "", overdue: false, q: "", sort: "created", order: "asc" };
}

/**
 * The query string of `GET /api/{user_id}/tasks` for a filter (defaults left out).
 * @param {TaskFilter} filter
 * @param {number} limit
 */
export function taskQuery(filter, limit) {
  const params = new URLSearchParams({ limit: String(limit) });
  if (filter.status !== "all") params.set("status", filter.status);
  if (filter.priority) params.set("priority", filter.priority);
  if (filter.tag) params.set("tag", filter.tag);
  if (filter.overdue) params.set("overdue", "true");
  if (filter.q.trim()) params.set("q", filter.q.trim());
  if (filter.sort !== "created") params.set("sort", filter.sort);
  if (filter.order !== DEFAULT_ORDER[filter.sort]) params.set("order", filter.order);
  return params.toString();
}

/** @param {Task} task @param {Date} now */
export function isOverdue(task, now) {
  const due = parseTime(task.due_at);
  return !task.completed && due !== null && due.getTime() < now.getTime();
}

/**
 * Whether a task belongs in the filtered list: how a live `task.*` event joins or leaves it.
 * Text is matched as the embedded database does (every word somewhere in title or description);
 * PostgreSQL's full-text search stems words, so with text the widget also asks the server again.
 * @param {Task} task
 * @param {TaskFilter} filter
 * @param {Date} now
 */
export function matchesFilter(task, filter, now) {
  if (filter.status !== "all" && task.completed !== (filter.status === "completed")) return false;
  if (filter.priority && (task.priority || "normal") !== filter.priority) return false;
  if (filter.tag && !(task.tags || []).includes(filter.tag)) return false;
  if (filter.overdue && !isOverdue(task, now)) return false;
  const words = filter.q.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || [];
  const text = `${task.title}\n${task.description || ""}`.toLowerCase();
  return words.every((word) => text.includes(word));
}

const PRIORITY_RANK = { low: 0, normal: 1, high: 2 };

/**
 * The server's order for a sort: id breaks ties; no due time sorts last, either way.
 * @param {TaskFilter} filter
 * @returns {(a: Task, b: Task) => number}
 */
export function taskOrder(filter) {
  const sign = filter.order === "desc" ? -1 : 1;
  /** @param {Task} task */
  const due = (task) => {
    const date = parseTime(task.due_at);
    return date ? date.getTime() : null;
  };
  /** @param {Task} a @param {Task} b */
  const byDue = (a, b) => {
    const [da, db] = [due(a), due(b)];
    if (da === null || db === null) return da === db ? 0 : da === null ? 1 : -1;
    return da - db;
  };
  return (a, b) => {
    switch (filter.sort) {
      case "due": {
        const [da, db] = [due(a), due(b)];
        if (da === null || db === null) return byDue(a, b) || a.id - b.id;
        return sign * (da - db) || a.id - b.id;
      }
      case "priority":
        return (
          sign * (PRIORITY_RANK[a.priority || "normal"] - PRIORITY_RANK[b.priority || "normal"]) ||
          byDue(a, b) ||
          a.id - b.id
        );
      case "title": {
        const [ta, tb] = [a.title.toLowerCase(), b.title.toLowerCase()];
        return sign * (ta < tb ? -1 : ta > tb ? 1 : 0) || a.id - b.id;
      }
      default:
        return sign * (a.id - b.id);
    }
  };
}

/** The user's tasks, loaded from REST and kept current by `task.*` events. */
export class TaskList {
  /** @type {Map<number, Task>} */
  #tasks = new Map();
  /** @type {Set<string>} every tag seen on a task this session: the tag filter's choices */
  #tags = new Set();

  /** @param {Task[]} tasks */
  replace(tasks) {
    this.#tasks = new Map(tasks.map((task) => [task.id, task]));
    for (const task of tasks) this.#learnTags(task);
  }

  /** @param {Task} task */
  #learnTags(task) {
    for (const tag of task.tags || []) this.#tags.add(tag);
  }

  /** @param {number} id */
  get(id) {
    return this.#tasks.get(id) || null;
  }

  /**
   * A task as the server now has it (an event or a REST answer).
   * @param {Task} task
   * @returns {TaskChange}
   */
  put(task) {
    const known = this.#tasks.has(task.id);
    this.#tasks.set(task.id, task);
    this.#learnTags(task);
    return known ? "updated" : "added";
  }

  /** @param {import("./protocol.js").TaskFrame} frame @returns {TaskChange} */
  apply(frame) {
    if (frame.type !== "task.deleted") return this.put(frame.task);
    this.#tasks.delete(frame.task.id);
    return "removed";
  }

  /**
   * In the order they are shown, only those the filter lets through (a task changed by an event
   * may have left it).
   * @param {TaskFilter} [filter]
   * @param {Date} [now]
   * @returns {Task[]}
   */
  list(filter = defaultFilter(), now = new Date()) {
    return Array.from(this.#tasks.values())
      .filter((task) => matchesFilter(task, filter, now))
      .sort(taskOrder(filter));
  }

  /** @returns {string[]} sorted */
  tags() {
    return Array.from(this.#tags).sort();
  }

  /** @param {Task[]} [tasks]  those shown (default: all) */
  counts(tasks = Array.from(this.#tasks.values())) {
    let done = 0;
    for (const task of tasks) if (task.completed) done += 1;
    return { open: tasks.length - done, done };
  }

  clear() {
    this.#tasks.clear();
    this.#tags.clear();
  }
}

// ------------------------------------------------------------------------------- reminders

/**
 * A reminder on screen.
 * @typedef {object} ShownReminder
 * @property {Task} task
 * @property {string} remindAt  when it was due
 * @property {number} seq  its `reminder` event
 */

/**
 * The reminders showing now, one per task. Each `reminder` event is shown once (by seq, so a
 * replay after a resume adds nothing), and closes on every device when the reminder is dealt
 * with anywhere: `reminder.dismissed`, a `task.updated` that snoozed it (a future `remind_at`)
 * or completed the task, or `task.deleted` (docs/protocol.md "Reminders").
 */
export class Reminders {
  /** @type {Map<number, ShownReminder>} by task id, in the order they fired */
  #shown = new Map();
  /** The highest reminder seq shown: an older one (replayed) is not shown again. */
  #lastSeq = 0;

  /**
   * The reminders a tab was showing before a reload (kept in sessionStorage).
   * @param {ShownReminder[]} shown
   */
  restore(shown) {
    for (const reminder of shown) {
      this.#shown.set(reminder.task.id, reminder);
      this.#lastSeq = Math.max(this.#lastSeq, reminder.seq);
    }
  }

  /** @returns {ShownReminder[]} oldest first */
  list() {
    return Array.from(this.#shown.values());
  }

  /** @param {number} taskId */
  has(taskId) {
    return this.#shown.has(taskId);
  }

  /**
   * @param {import("./protocol.js").ReminderFrame} frame
   * @returns {ShownReminder | null} the reminder to show, null if it was seen already or needs none
   */
  fired(frame) {
    if (frame.seq <= this.#lastSeq) return null;
    this.#lastSeq = frame.seq;
    if (frame.task.completed) return null;
    const shown = { task: frame.task, remindAt: frame.remind_at, seq: frame.seq };
    this.#shown.delete(frame.task.id); // fired again (a repeating task): to the end of the line
    this.#shown.set(frame.task.id, shown);
    return shown;
  }

  /** @param {number} taskId @returns {boolean} whether one closed */
  dismissed(taskId) {
    return this.#shown.delete(taskId);
  }

  /**
   * A task changed: its reminder closes if that dealt with it, or shows the new title.
   * @param {"task.created" | "task.updated" | "task.deleted"} type
   * @param {Task} task
   * @param {Date} now
   * @returns {boolean} whether what is shown changed
   */
  taskChanged(type, task, now) {
    const shown = this.#shown.get(task.id);
    if (!shown) return false;
    const next = parseTime(task.remind_at);
    if (type === "task.deleted" || task.completed || (next && next.getTime() > now.getTime())) {
      this.#shown.delete(task.id);
    } else {
      shown.task = task;
    }
    return true;
  }

  clear() {
    this.#shown.clear();
    this.#lastSeq = 0;
  }
}

// ------------------------------------------------------------------------------- conversations

/** @typedef {Conversation & { unread: boolean }} ConversationItem */

/** The conversation list, most recent activity first, with an unread mark per conversation. */
export class ConversationList {
  /** @type {ConversationItem[]} */
  items = [];

  /**
   * Take the server's list, keeping the unread marks already known.
   * @param {Conversation[]} conversations
   * @param {(id: number) => boolean} unreadIfNew  the mark of a conversation not seen before
   */
  merge(conversations, unreadIfNew) {
    const known = new Map(this.items.map((item) => [item.id, item.unread]));
    this.items = conversations.map((c) => ({ ...c, unread: known.get(c.id) ?? unreadIfNew(c.id) }));
  }

  /** @param {number | null} id */
  get(id) {
    return this.items.find((item) => item.id === id) || null;
  }

  /** @param {number | null} id */
  has(id) {
    return this.get(id) !== null;
  }

  /**
   * One that was just created here: shown at once, before the server's own title and times arrive.
   * @param {number} id
   * @param {string} title
   * @param {string} now
   */
  add(id, title, now) {
    if (this.has(id)) return;
    this.items.unshift({ id, title, created_at: now, updated_at: now, unread: false });
  }

  /**
   * A message arrived in a conversation: it moves to the top.
   * @param {number} id @param {string} at @param {boolean} unread
   * @returns {boolean} whether the conversation is known
   */
  touch(id, at, unread) {
    const item = this.get(id);
    if (!item) return false;
    item.updated_at = at;
    if (unread) item.unread = true;
    this.items.sort((a, b) => {
      const ta = parseTime(a.updated_at);
      const tb = parseTime(b.updated_at);
      return (tb ? tb.getTime() : 0) - (ta ? ta.getTime() : 0) || b.id - a.id;
    });
    return true;
  }

  /** @param {number | null} id */
  markRead(id) {
    const item = this.get(id);
    if (item) item.unread = false;
  }

  /** @param {number} id */
  remove(id) {
    this.items = this.items.filter((item) => item.id !== id);
  }

  clear() {
    this.items = [];
  }
}

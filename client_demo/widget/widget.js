// @ts-check
/* The widget itself: what happens when the person acts and when the server speaks. It keeps the
 * session (its tokens in credentials.js), applies each frame to the DOM-free state modules, asks the
 * DOM modules (render.js, log.js) to draw the result, and talks to the server through api.js and
 * connection.js.
 * The loader, chat-widget.js, calls start() with what its script tag says.
 */

import { Api, ApiError, errorMessage, errorStatus } from "./api.js";
import { MAX_MESSAGE_CHARS, PAGE_SIZE, readConfig } from "./config.js";
import { Connection, OutboxSender } from "./connection.js";
import { Credentials, sessionFromAuth, tokenTimes } from "./credentials.js";
import { browserZone, usableZone } from "./due.js";
import { MessageLog } from "./log.js";
import { View } from "./render.js";
import { ConversationList } from "./conversations.js";
import { EventStream } from "./event-stream.js";
import { Outbox, inView, randomId } from "./outbox.js";
import { Reminders } from "./reminders.js";
import { scopedStorage } from "./storage.js";
import { TaskPanel } from "./task-panel.js";
import { TaskList, defaultFilter } from "./tasks.js";
import { parseChoices, sessionEndedNotice } from "./text.js";
import { SNOOZE_MINUTES, Toasts, askNotifications, notificationPermission } from "./toasts.js";
import { Turns } from "./turns.js";

/** @typedef {import("./protocol.js").Session} Session */
/** @typedef {import("./protocol.js").ServerFrame} ServerFrame */
/** @typedef {import("./protocol.js").ClientFrame} ClientFrame */
/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./connection.js").AuthRetry} AuthRetry */
/** @typedef {import("./render.js").AuthMode} AuthMode */
/** @typedef {import("./api.js").UserApi} UserApi */
/** @typedef {import("./config.js").Config} Config */
/** @typedef {import("./config.js").Embed} Embed */

/** How often due times in words ("due in 5 min") are brought up to date. */
const CLOCK_TICK_MS = 30_000;
/** With a text filter, how long after a task event the server is asked again (it stems words). */
const SEARCH_REFRESH_MS = 300;

/** @type {(keyof import("./storage.js").Stored)[]} what a tab remembers of where its user was */
const FORMER_POSITIONS = ["seq", "conversation", "draft", "reminders"];

/**
 * One handler per frame type, each given its own kind of frame.
 * @typedef {{ [K in ServerFrame["type"]]?: (frame: Extract<ServerFrame, { type: K }>) => void }} Handlers
 */

/**
 * The page's handle on the widget: `window.TodoChat`.
 * @typedef {object} TodoChatApi
 * @property {() => void} open
 * @property {() => void} close
 * @property {() => void} toggle
 */

class Widget {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #convTimer = undefined;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #searchTimer = undefined;

  /** @param {Config} config */
  constructor(config) {
    this.config = config;
    this.storage = scopedStorage(`todochat:${config.server}:`);
    this.api = new Api(config.server);
    const stored = this.storage.get("session");
    /** @type {Credentials | null} who is logged in on this tab, and their tokens */
    this.credentials = stored ? this.#credentialsFor(stored) : null;
    /** @type {UserApi | null} */
    this.user = this.credentials ? this.api.forUser(this.credentials) : null;
    /** The access token the socket was last given (its `auth` frame, or `auth.refresh`). */
    this.socketToken = "";
    /** @type {AuthMode} */
    this.authMode = "login";

    this.events = new EventStream({
      onSeq: (seq) => {
        if (this.credentials) this.storage.set("seq", { userId: this.credentials.userId, seq });
      },
    });
    this.outbox = new Outbox(this.storage.get("outbox") || [], (entries) => this.storage.set("outbox", entries));
    this.turns = new Turns();
    this.tasks = new TaskList();
    /** The task panel's filters and order; the REST list and live events both go through it. */
    this.filter = defaultFilter();
    this.reminders = new Reminders();
    /** The user's time zone (the server's setting); the browser's until the server says. */
    this.zone = usableZone(browserZone() || "UTC");
    this.conversations = new ConversationList();
    /** @type {number | null} the conversation on screen; null: a new one, created by its first message */
    this.conversationId = null;
    /** Messages typed into a new conversation share this key until the first one creates it. */
    this.draftKey = "";
    /** More history exists before the oldest message shown. */
    this.hasMore = false;
    /** The REST snapshot has been loaded since the session started (or since a resync). */
    this.loaded = false;
    this.reloadAgain = false;
    /** A task list load (a filter change) is under way; another was asked for meanwhile. */
    this.loadingTasks = false;
    this.tasksAgain = false;

    this.view = new View(config.title, {
      setOpen: (open) => this.#setOpen(open),
      logout: () => this.#logOut(),
      submitAuth: () => this.#submitAuth(),
      toggleAuthMode: () => this.#setAuthMode(this.authMode === "login" ? "signup" : "login"),
      newConversation: () => this.#selectConversation(null, { focus: true }),
      selectConversation: (id) => this.#selectConversation(id, { focus: true }),
      loadEarlier: () => this.#loadEarlier(),
      send: (text) => this.#submitMessage(text),
      stop: () => this.#cancelTurn(),
      showDevices: (open) => this.#showDevices(open),
      endSession: (sessionId) => this.#endSession(sessionId),
      logoutAll: () => this.#logOutEverywhere(),
    });
    this.log = new MessageLog(this.view.el.log, this.view.el.scroller);
    this.taskPanel = new TaskPanel(this.view.root, {
      toggleTask: (taskId) => this.#toggleTask(taskId),
      filter: (filter) => this.#setFilter(filter),
      enableNotifications: () => this.#enableNotifications(),
    });
    this.toasts = new Toasts(this.view.root, {
      snooze: (taskId) => this.#sendReminder({ type: "reminder.snooze", task_id: taskId, minutes: SNOOZE_MINUTES }),
      done: (taskId) => this.#completeFromReminder(taskId),
      dismiss: (taskId) => this.#sendReminder({ type: "reminder.dismiss", task_id: taskId }),
    });
    this.conn = new Connection(config.wsUrl, {
      authFrame: () => this.#authFrame(),
      onFrame: (frame) => this.#onFrame(frame),
      onState: (state, detail) => this.#onConnState(state, detail),
      onUnauthorized: () => this.#onUnauthorized(),
      onAuthFailed: (reason) => this.#signOut({ expired: true, reason }),
    });
    this.sender = new OutboxSender(this.conn, this.outbox, {
      userId: () => (this.credentials ? this.credentials.userId : null),
      paused: () => this.events.holding,
      busy: (conversationId) => this.turns.runningIn(conversationId) !== null,
      onSent: () => this.#refreshPendingLabels(),
    });
    /** @type {Handlers} */
    this.handlers = {
      hello: (f) => this.#onHello(f),
      "auth.refreshed": (f) => this.#onRefreshed(f),
      ack: (f) => this.#onAck(f),
      message: (f) => this.#onMessage(f),
      "turn.start": (f) => this.#onTurnStart(f),
      delta: (f) => this.#onDelta(f),
      "tool.call": (f) => this.#onToolCall(f),
      "tool.result": (f) => this.#onToolResult(f),
      "turn.end": (f) => this.#onTurnEnd(f),
      "task.created": (f) => this.#onTask(f),
      "task.updated": (f) => this.#onTask(f),
      "task.deleted": (f) => this.#onTask(f),
      reminder: (f) => this.#onReminder(f),
      "reminder.dismissed": (f) => this.#onReminderDismissed(f),
      "conversation.deleted": (f) => this.#onConversationDeleted(f),
      error: (f) => this.#onError(f),
      resync_required: (f) => this.#onResync(f),
    };
    this.#resetData();
  }

  /** @returns {TodoChatApi} */
  mount() {
    const attach = () => {
      document.body.append(this.view.host);
      const open = this.storage.get("open");
      this.#setOpen(open === undefined ? this.config.open : open, { focus: false });
      if (this.credentials) this.#enterApp({ focus: false });
      else this.#showAuth();
    };
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach, { once: true });
    window.addEventListener("online", () => {
      if (this.credentials) this.credentials.retryNow();
      this.conn.retryNow();
    });
    // A hidden tab's timers are throttled (to once a minute, or less): a refresh may be overdue.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.credentials) this.credentials.check();
    });
    window.addEventListener("offline", () => this.conn.wentOffline());
    // "due in 5 min" becomes "overdue by 1 min" without an event: redraw on a slow clock.
    setInterval(() => {
      if (!this.credentials) return;
      this.#renderTasks();
      this.#renderReminders();
    }, CLOCK_TICK_MS);
    return {
      open: () => this.#setOpen(true),
      close: () => this.#setOpen(false),
      toggle: () => this.#setOpen(!this.view.isOpen),
    };
  }

  #resetData() {
    this.conversations.clear();
    this.conversationId = null;
    this.draftKey = this.storage.get("draft") || this.#newDraft();
    this.tasks.clear();
    this.reminders.clear();
    this.turns.clear();
    this.log.clear();
    this.hasMore = false;
    this.loaded = false;
    this.reloadAgain = false;
    this.loadingTasks = false;
    this.tasksAgain = false;
    this.events.release();
    this.outbox.inflight = null;
    this.sender.reset();
  }

  #newDraft() {
    const key = randomId("d-");
    this.storage.set("draft", key);
    return key;
  }

  /**
   * @param {boolean} open
   * @param {{ focus?: boolean }} [options]
   */
  #setOpen(open, { focus = true } = {}) {
    this.view.showOpen(open);
    this.storage.set("open", open);
    if (!focus) return;
    if (!open) this.view.focusLauncher();
    else if (this.credentials) this.view.focusInput();
    else this.view.focusEmail();
  }

  /**
   * @param {ConnectionState} state
   * @param {string} detail
   */
  #onConnState(state, detail) {
    this.view.showConnection(state);
    if (state !== "online" && this.credentials) this.credentials.socketExpiry(null);
    if (detail === "too-many") this.view.notice("Too many open chat windows for this account: close some tabs.");
    this.#refreshPendingLabels();
    this.#renderComposer();
    if (state === "online") this.view.hideNotice();
  }

  // --- the session -----------------------------------------------------------------------------

  /**
   * The tokens of a session on this tab, refreshed on time and shared with its other tabs.
   * @param {Session} session
   */
  #credentialsFor(session) {
    const server = this.config.server;
    // Stored by an older version of the widget: no refresh token, and the token's own expiry.
    const times = typeof session.expiresAt === "number" ? null : tokenTimes(session.token);
    const expiresAt = times ? times.expiresAt * 1000 : Number(session.expiresAt) || 0;
    /** @type {Credentials} */
    const credentials = new Credentials(
      { ...session, refreshToken: session.refreshToken || "", expiresAt },
      {
        exchange: (refreshToken) => this.api.refresh(refreshToken),
        save: (fresh) => {
          if (this.credentials === credentials) this.storage.set("session", fresh);
        },
        onTokens: (fresh) => {
          if (this.credentials === credentials) this.#giveSocket(fresh.token);
        },
        onEnded: (reason) => {
          if (this.credentials === credentials) this.#signOut({ expired: true, reason });
        },
      },
      {
        server,
        // Web Locks exist only in secure contexts (https, localhost); BroadcastChannel everywhere.
        locks: navigator.locks || null,
        channel: typeof BroadcastChannel === "function" ? new BroadcastChannel(`todo-chat:${server}`) : null,
      },
    );
    return credentials;
  }

  /**
   * The socket carries on with `token` (`auth.refresh`) instead of closing when its own runs out.
   * @param {string} token
   */
  #giveSocket(token) {
    // Not online: nothing to send; the next socket authenticates with the new token anyway.
    if (token !== this.socketToken && this.conn.send({ type: "auth.refresh", token })) this.socketToken = token;
  }

  /**
   * The socket was closed with 4401 ("token expired", "session ended", ...): a refresh decides.
   * @returns {Promise<AuthRetry>}
   */
  async #onUnauthorized() {
    const credentials = this.credentials;
    if (!credentials) return "stop";
    const outcome = await credentials.refresh({ stale: this.socketToken });
    if (credentials !== this.credentials) return "stop";
    // "ended": the credentials have signed the tab out already, with the server's reason.
    return outcome === "ok" ? "reconnect" : outcome === "unavailable" ? "backoff" : "stop";
  }

  /** @returns {UserApi} */
  #userApi() {
    if (!this.user) throw new ApiError(401, "unauthorized", "Not logged in");
    return this.user;
  }

  #showAuth(message = "") {
    this.view.showAuth();
    this.#setAuthMode(this.authMode);
    this.view.authError(message);
  }

  /** @param {AuthMode} mode */
  #setAuthMode(mode) {
    this.authMode = mode;
    this.view.setAuthMode(mode);
  }

  async #submitAuth() {
    const { email, password } = this.view.credentials();
    if (!email || !password) {
      this.view.authError("Enter your email and password.");
      if (email) this.view.focusPassword();
      else this.view.focusEmail();
      return;
    }
    const signup = this.authMode === "signup";
    if (signup && password.length < 8) {
      this.view.authError("Choose a password of at least 8 characters.");
      this.view.focusPassword();
      return;
    }
    this.view.authBusy(true);
    this.view.authError("");
    try {
      const body = await this.api.authenticate(signup ? "signup" : "login", email, password);
      this.#startSession(sessionFromAuth(body, Date.now()), { signedUp: signup });
    } catch (error) {
      this.view.authError(
        errorStatus(error) === 409 ? "An account with this email already exists: log in instead." : errorMessage(error),
      );
    } finally {
      this.view.authBusy(false);
    }
  }

  /**
   * @param {Session} session
   * @param {{ signedUp: boolean }} how  a new account has the default zone: no need to ask
   */
  #startSession(session, { signedUp }) {
    const seq = this.storage.get("seq");
    if (!seq || seq.userId !== session.userId) {
      // Another account used this tab before: none of its positions apply.
      for (const name of FORMER_POSITIONS) this.storage.remove(name);
    }
    this.outbox.keepUser(session.userId);
    if (this.credentials) this.credentials.close();
    this.storage.set("session", session);
    this.credentials = this.#credentialsFor(session);
    this.user = this.api.forUser(this.credentials);
    this.#enterApp({ focus: true, signedUp });
  }

  /** @param {{ focus: boolean, signedUp?: boolean }} options */
  #enterApp({ focus, signedUp = false }) {
    const credentials = this.credentials;
    if (!credentials) return;
    this.#resetData();
    const seq = this.storage.get("seq");
    const mine = Boolean(seq && seq.userId === credentials.userId);
    this.events.lastSeq = seq && mine ? seq.seq : null;
    // Showing before a reload: shown again; the events replayed from `after_seq` close any dealt with meanwhile.
    if (mine) this.reminders.restore(this.storage.get("reminders") || []);
    this.view.showApp(credentials.email);
    this.#clearLog();
    this.#renderConversations();
    this.#renderTasks();
    this.#renderReminders();
    this.#renderNotifyButton();
    this.#renderEmpty();
    this.#renderComposer();
    credentials.start(); // a stored token that is due (a reload after a while) is refreshed now
    this.conn.start();
    if (focus && this.view.isOpen) this.view.focusInput();
    this.#syncZone({ signedUp });
  }

  /**
   * The server keeps the user's time zone (repeating tasks keep their wall-clock time in it): a
   * new account, or one still on the default "UTC", gets this browser's. A zone set on purpose
   * (another device, the API) is left alone, and due times are shown in it.
   * @param {{ signedUp: boolean }} options
   */
  async #syncZone({ signedUp }) {
    const credentials = this.credentials;
    const local = browserZone();
    try {
      const user = this.#userApi();
      let me = signedUp ? null : await user.me();
      const unset = signedUp || (me !== null && me.timezone === "UTC");
      if (local && local !== "UTC" && unset && this.credentials === credentials) me = await user.setTimezone(local);
      if (me && this.credentials === credentials) {
        this.zone = usableZone(me.timezone);
        this.#renderTasks();
        this.#renderReminders();
      }
    } catch (_) {
      /* due times stay in the browser's zone; the next login asks again */
    }
  }

  /** Log out: this session ends on the server too (best effort: offline, it is only forgotten here). */
  #logOut() {
    const { credentials, user } = this;
    this.credentials = null; // out of the widget's hands: nothing they do from now on is saved or shown
    this.#signOut({});
    if (!credentials || !user) return;
    // With a refresh first if the access token has run out (a tab back from sleep), then closed.
    user
      .logout()
      .catch(() => {})
      .finally(() => credentials.close());
  }

  /** @param {{ expired?: boolean, reason?: string }} options */
  #signOut({ expired = false, reason = "" }) {
    this.conn.stop();
    if (this.credentials) this.credentials.close();
    this.credentials = null;
    this.user = null;
    this.socketToken = "";
    this.storage.remove("session");
    if (!expired) {
      // A deliberate log out forgets everything, unsent messages included (shared computers).
      this.outbox.clear();
      this.storage.remove("outbox");
      for (const name of FORMER_POSITIONS) this.storage.remove(name);
    }
    this.#resetData();
    this.#clearLog();
    this.#renderChoices();
    this.view.hideNotice();
    const message = expired ? sessionEndedNotice(reason) : "";
    this.#setAuthMode("login");
    this.#showAuth(message);
    if (this.view.isOpen) this.view.focusEmail();
  }

  /** @returns {ClientFrame} */
  #authFrame() {
    /** @type {ClientFrame} */
    const frame = { type: "auth", token: this.credentials ? this.credentials.token : "" };
    this.socketToken = frame.token;
    if (this.events.lastSeq !== null) frame.after_seq = this.events.lastSeq; // replay what this tab missed
    return frame;
  }

  // --- events ----------------------------------------------------------------------------------

  /** @param {ServerFrame} frame */
  #onFrame(frame) {
    if (this.events.receive(frame) === "apply") this.#dispatch(frame);
  }

  /** @param {ServerFrame} frame */
  #dispatch(frame) {
    const handler = /** @type {((frame: ServerFrame) => void) | undefined} */ (this.handlers[frame.type]);
    if (handler) handler(frame);
  }

  /** @param {import("./protocol.js").HelloFrame} frame */
  #onHello(frame) {
    if (this.credentials) {
      this.credentials.socketExpiry(frame.expires_at);
      // Newer tokens came while this socket was authenticating (another tab's, or a refresh).
      this.#giveSocket(this.credentials.token);
    }
    this.events.hello(frame.last_seq);
    if (!this.loaded) this.#reload();
    this.sender.flush();
  }

  /** @param {import("./protocol.js").AuthRefreshedFrame} frame */
  #onRefreshed(frame) {
    if (this.credentials) this.credentials.socketExpiry(frame.expires_at);
  }

  /** @param {import("./protocol.js").ResyncFrame} frame */
  #onResync(frame) {
    // The server cannot replay what we missed: take REST's state, then continue from its seq.
    this.events.moveTo(frame.last_seq);
    this.turns.clear();
    this.loaded = false;
    this.#reload();
  }

  /** Load conversations, tasks and the conversation on screen from REST; events wait meanwhile. */
  async #reload() {
    if (this.events.holding) {
      this.reloadAgain = true;
      return;
    }
    const session = this.credentials;
    if (!session) return;
    this.events.hold();
    try {
      do {
        this.reloadAgain = false;
        const user = this.#userApi();
        const [convs, tasks] = await Promise.all([user.conversations(), user.tasks(this.filter)]);
        if (this.credentials !== session) return;
        this.conversations.merge(convs.data, () => false);
        this.tasks.replace(tasks.data);
        this.#renderConversations();
        this.#renderTasks();
        /** @type {number | null | undefined} */
        let target = this.conversationId;
        if (!this.loaded) {
          const stored = this.storage.get("conversation");
          const newest = this.conversations.items[0];
          target = stored === undefined && newest ? newest.id : stored;
        }
        if (target !== null && target !== undefined && !this.conversations.has(target)) target = null;
        await this.#loadConversation(target === undefined ? null : target, { keepDraft: true });
      } while (this.reloadAgain && this.credentials === session);
      this.loaded = true;
    } catch (error) {
      if (this.credentials === session && errorStatus(error) !== 401) {
        this.view.notice(`Could not load your data: ${errorMessage(error)}`);
      }
    } finally {
      // Another session started meanwhile: its own reload holds (and releases) its events.
      if (this.credentials === session) {
        for (const frame of this.events.release()) this.#dispatch(frame);
        this.#renderComposer();
        this.sender.flush();
      }
    }
  }

  /** @param {import("./protocol.js").AckFrame} frame */
  #onAck(frame) {
    const entry = this.outbox.ack(frame);
    this.sender.settled();
    if (entry && entry.conversation_id === null) {
      // The first message of a new conversation created it.
      if (this.conversationId === null && this.draftKey === entry.draft) {
        this.conversationId = frame.conversation_id;
        this.storage.set("conversation", frame.conversation_id);
      }
      if (!this.conversations.has(frame.conversation_id)) {
        // Shown at once; the refresh below brings the server's own title and times.
        const title = entry.message.split(/\s+/).join(" ").trim();
        this.conversations.add(frame.conversation_id, title, new Date().toISOString());
        this.#renderConversations();
      }
      this.#refreshConversationsSoon();
    }
    this.log.acked(frame, this.conversationId);
    this.#refreshPendingLabels();
    this.sender.flush();
  }

  /** @param {import("./protocol.js").MessageFrame} frame */
  #onMessage(frame) {
    const message = frame.message;
    this.turns.message(message);
    const elsewhere = frame.conversation_id !== this.conversationId;
    if (this.conversations.touch(frame.conversation_id, message.created_at, elsewhere)) {
      this.#renderConversations();
    } else {
      this.#refreshConversationsSoon(); // started in another tab, or just now by our own ack
    }
    if (!elsewhere) {
      this.#withScroll(() => this.log.upsert(message));
      this.#renderChoices();
    }
  }

  /** @param {import("./protocol.js").TurnStartFrame} frame */
  #onTurnStart(frame) {
    const turn = this.turns.start(frame);
    if (turn.conversationId === this.conversationId && !this.log.hasReply(turn.id)) {
      this.#withScroll(() => this.log.stream(turn));
    }
    this.#renderComposer();
    this.#renderChoices();
    this.#refreshPendingLabels();
  }

  /** @param {import("./protocol.js").DeltaFrame} frame */
  #onDelta(frame) {
    const turn = this.turns.delta(frame);
    if (turn && turn.conversationId === this.conversationId) this.#withScroll(() => this.log.renderStream(turn));
  }

  /** @param {import("./protocol.js").ToolCallFrame} frame */
  #onToolCall(frame) {
    const turn = this.turns.toolCall(frame);
    if (turn && turn.conversationId === this.conversationId) {
      this.#withScroll(() => this.log.renderTool(turn, frame.call_id));
    }
  }

  /** @param {import("./protocol.js").ToolResultFrame} frame */
  #onToolResult(frame) {
    const turn = this.turns.toolResult(frame);
    if (turn && turn.conversationId === this.conversationId) this.log.renderTool(turn, frame.call_id);
  }

  /** @param {import("./protocol.js").TurnEndFrame} frame */
  #onTurnEnd(frame) {
    this.turns.end(frame);
    this.log.endTurn(frame); // a bubble still streaming: no final `message` came (conversation deleted)
    if (frame.status === "failed" && frame.reason && frame.conversation_id === this.conversationId) {
      this.view.notice(`The assistant could not finish: ${frame.reason}`);
    }
    this.#renderComposer();
    this.#renderChoices();
    this.#refreshPendingLabels();
    this.sender.flush(); // a message waiting for this conversation can go now
  }

  /** @param {import("./protocol.js").TaskFrame} frame */
  #onTask(frame) {
    const change = this.tasks.apply(frame);
    this.#renderTasks(change === "added" ? frame.task.id : null);
    if (this.reminders.taskChanged(frame.type, frame.task, new Date())) this.#renderReminders();
    if (this.filter.q.trim()) {
      // The server's search may see a match (a stemmed word) where the widget's does not.
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => this.#loadTasks(), SEARCH_REFRESH_MS);
    }
  }

  /** @param {import("./protocol.js").ReminderFrame} frame */
  #onReminder(frame) {
    if (this.tasks.get(frame.task.id)) this.tasks.put(frame.task); // its remind_at is null now
    const shown = this.reminders.fired(frame);
    this.#renderTasks();
    if (!shown) return;
    this.#renderReminders();
    this.toasts.notify(shown, this.#clock(), () => this.#setOpen(true));
  }

  /** @param {import("./protocol.js").ReminderDismissedFrame} frame */
  #onReminderDismissed(frame) {
    if (this.tasks.get(frame.task.id)) this.tasks.put(frame.task);
    if (this.reminders.dismissed(frame.task.id)) this.#renderReminders();
  }

  /** @param {import("./protocol.js").ConversationDeletedFrame} frame */
  #onConversationDeleted(frame) {
    this.conversations.remove(frame.conversation_id);
    this.#renderConversations();
    if (this.conversationId === frame.conversation_id) this.#selectConversation(null, {});
  }

  /** @param {import("./protocol.js").ErrorFrame} frame */
  #onError(frame) {
    // Only an `auth.refresh` draws `unauthorized`; the socket stays open, and if its own token is
    // no good either, the 4401 that follows decides. Nothing for the person to read.
    if (frame.code === "unauthorized") return;
    const refused = this.outbox.refused(frame, Date.now());
    if (refused) {
      this.sender.settled();
      // Refused for good (invalid, too long, conversation gone): say so next to the message.
      if (!refused.retry) this.log.refused(refused.entry.client_msg_id, frame.detail || frame.code);
      this.sender.flush();
      return;
    }
    if (frame.code === "not_found" && this.turns.size) {
      this.turns.cancelRefused();
      this.#renderComposer();
    }
    this.view.notice(frame.detail || frame.code);
  }

  // --- conversations and history ---------------------------------------------------------------

  #refreshConversationsSoon() {
    clearTimeout(this.#convTimer);
    this.#convTimer = setTimeout(async () => {
      try {
        const convs = await this.#userApi().conversations();
        this.conversations.merge(convs.data, (id) => id !== this.conversationId);
        this.#renderConversations();
      } catch (_) {
        /* the next event or reload tries again */
      }
    }, 150);
  }

  /**
   * @param {number | null} id
   * @param {{ focus?: boolean }} options
   */
  async #selectConversation(id, { focus = false }) {
    this.storage.set("conversation", id);
    try {
      await this.#loadConversation(id, { keepDraft: false });
    } catch (error) {
      if (errorStatus(error) !== 401) this.view.notice(`Could not load the conversation: ${errorMessage(error)}`);
    }
    if (focus) this.view.focusInput();
  }

  /**
   * Show a conversation: its latest history page, its queued messages and its running turn.
   * @param {number | null} id  null: a new conversation
   * @param {{ keepDraft: boolean }} options  keep the new conversation's draft key (a reload)
   */
  async #loadConversation(id, { keepDraft }) {
    const changed = id !== this.conversationId;
    this.conversationId = id;
    if (id === null && (changed || !keepDraft)) this.draftKey = this.#newDraft();
    this.conversations.markRead(id);
    this.#renderConversations();
    this.#clearLog();
    this.view.showEmpty(false); // not "empty" while its history is on the way
    if (id !== null) {
      const page = await this.#userApi().messages(id, { limit: PAGE_SIZE });
      if (this.conversationId !== id) return;
      this.#clearLog();
      this.hasMore = Boolean(page.has_more);
      this.log.oldestId = page.data.length ? page.data[0].id : null;
      for (const message of page.data) this.log.upsert(message);
    }
    for (const entry of this.outbox.entries) {
      if (inView(entry, this.conversationId, this.draftKey)) this.log.pending(entry);
    }
    for (const turn of this.turns) {
      if (turn.conversationId !== id || this.log.hasReply(turn.id)) continue;
      this.log.stream(turn);
      for (const callId of turn.tools.keys()) this.log.renderTool(turn, callId);
      this.log.renderStream(turn);
    }
    this.view.loadEarlierButton({ hidden: !this.hasMore });
    this.#renderEmpty();
    this.#renderComposer();
    this.#renderChoices();
    this.#refreshPendingLabels();
    this.log.scrollToEnd();
  }

  async #loadEarlier() {
    const id = this.conversationId;
    const before = this.log.oldestId;
    if (id === null || before === null) return;
    this.view.loadEarlierButton({ disabled: true });
    try {
      const page = await this.#userApi().messages(id, { limit: PAGE_SIZE, before });
      if (this.conversationId !== id) return;
      this.log.keepPlace(() => {
        for (const message of page.data) this.log.upsert(message);
        if (page.data.length) this.log.oldestId = page.data[0].id;
        this.hasMore = Boolean(page.has_more);
        this.view.loadEarlierButton({ hidden: !this.hasMore });
      });
    } catch (error) {
      this.view.notice(`Could not load earlier messages: ${errorMessage(error)}`);
    } finally {
      this.view.loadEarlierButton({ disabled: false });
    }
  }

  // --- sending ---------------------------------------------------------------------------------

  /** @param {string} raw */
  #submitMessage(raw) {
    const text = String(raw || "");
    if (!text.trim() || !this.credentials) return;
    if (text.length > MAX_MESSAGE_CHARS) {
      this.view.notice(`Messages are limited to ${MAX_MESSAGE_CHARS.toLocaleString()} characters.`);
      return;
    }
    const entry = this.outbox.add({
      message: text,
      conversationId: this.conversationId,
      draft: this.draftKey,
      userId: this.credentials.userId,
    });
    this.view.clearInput();
    this.log.pending(entry);
    this.#refreshPendingLabels();
    this.#renderEmpty();
    this.#renderChoices();
    this.log.scrollToEnd();
    this.view.focusInput();
    this.sender.flush();
    this.#refreshPendingLabels();
  }

  #cancelTurn() {
    const turn = this.turns.runningIn(this.conversationId);
    if (!turn) return;
    if (this.conn.send({ type: "cancel", turn_id: turn.id })) {
      this.turns.cancel(turn.id);
      this.#renderComposer();
    } else {
      this.view.notice("Offline: the reply cannot be stopped until the connection is back.");
    }
  }

  // --- tasks and reminders --------------------------------------------------------------------

  /** @param {import("./tasks.js").TaskFilter} filter */
  #setFilter(filter) {
    this.filter = filter;
    this.#renderTasks(); // at once from what is known; then the server's answer
    this.#loadTasks();
  }

  /** The task list for the current filter from REST; events wait meanwhile, then apply on top. */
  async #loadTasks() {
    if (this.events.holding) {
      // One load at a time; the one under way goes again, with the filter as it is by then.
      if (this.loadingTasks) this.tasksAgain = true;
      else this.reloadAgain = true;
      return;
    }
    const session = this.credentials;
    if (!session) return;
    this.events.hold();
    this.loadingTasks = true;
    try {
      do {
        this.tasksAgain = false;
        const page = await this.#userApi().tasks(this.filter);
        if (this.credentials !== session) return;
        this.tasks.replace(page.data);
      } while (this.tasksAgain);
    } catch (error) {
      if (this.credentials === session && errorStatus(error) !== 401) {
        this.view.notice(`Could not load your tasks: ${errorMessage(error)}`);
      }
    } finally {
      this.loadingTasks = false;
      if (this.credentials === session) {
        for (const frame of this.events.release()) this.#dispatch(frame);
        this.#renderTasks();
        this.sender.flush();
        if (this.reloadAgain) this.#reload(); // asked for while the tasks loaded (a resync)
      }
    }
  }

  /** @param {ClientFrame} frame  a snooze or a dismissal: every device hears the outcome */
  #sendReminder(frame) {
    if (!this.conn.send(frame)) this.view.notice("Offline: the reminder can be dealt with once the connection is back.");
  }

  /** @param {number} taskId */
  async #completeFromReminder(taskId) {
    try {
      const task = await this.#userApi().completeTask(taskId);
      this.tasks.put(task);
      this.reminders.taskChanged("task.updated", task, new Date());
    } catch (error) {
      if (errorStatus(error) === 404) this.reminders.dismissed(taskId); // deleted meanwhile
      else this.view.notice(`Could not complete the task: ${errorMessage(error)}`);
    } finally {
      this.#renderTasks();
      this.#renderReminders();
    }
  }

  async #enableNotifications() {
    await askNotifications();
    this.#renderNotifyButton();
  }

  /** @param {number} taskId */
  async #toggleTask(taskId) {
    try {
      this.tasks.put(await this.#userApi().toggleTask(taskId));
    } catch (error) {
      this.view.notice(`Could not update the task: ${errorMessage(error)}`);
    } finally {
      this.#renderTasks(); // the server's answer decides the state shown
    }
  }

  // --- the sessions ----------------------------------------------------------------------------

  /** @param {boolean} open */
  async #showDevices(open) {
    this.view.showDevices(open);
    if (open) await this.#loadDevices();
  }

  async #loadDevices() {
    const credentials = this.credentials;
    try {
      const page = await this.#userApi().sessions();
      if (this.credentials === credentials && this.view.devicesOpen) this.view.renderDevices(page.data);
    } catch (error) {
      if (errorStatus(error) !== 401) this.view.notice(`Could not load your sessions: ${errorMessage(error)}`);
    }
  }

  /**
   * End another session: its sockets close at once, its tokens are refused.
   * @param {string} sessionId
   */
  async #endSession(sessionId) {
    try {
      await this.#userApi().endSession(sessionId);
    } catch (error) {
      // 404: it ended meanwhile, which is what was asked.
      if (errorStatus(error) !== 404 && errorStatus(error) !== 401) {
        this.view.notice(`Could not end the session: ${errorMessage(error)}`);
      }
    }
    await this.#loadDevices();
  }

  async #logOutEverywhere() {
    const credentials = this.credentials;
    // This session ends too: its socket must not take the server's 4401 for an ended session.
    this.conn.stop();
    try {
      await this.#userApi().logoutAll();
    } catch (error) {
      if (this.credentials === credentials && errorStatus(error) !== 401) {
        this.view.notice(`Could not log out everywhere: ${errorMessage(error)}`);
        this.conn.start();
        return;
      }
    }
    if (this.credentials === credentials) this.#signOut({});
  }

  // --- drawing ---------------------------------------------------------------------------------

  #clearLog() {
    this.log.clear();
    this.hasMore = false;
    this.view.loadEarlierButton({ hidden: true });
  }

  /**
   * Change the log, following its end if the reader was there.
   * @param {() => void} mutate
   */
  #withScroll(mutate) {
    this.log.withScroll(() => {
      mutate();
      this.#renderEmpty();
    });
  }

  #renderEmpty() {
    this.view.showEmpty(this.log.isEmpty && this.credentials !== null);
  }

  #refreshPendingLabels() {
    for (const entry of this.outbox.entries) {
      let label = "Sending\u2026";
      if (!this.conn.online) label = "Queued: sends when back online";
      else if (entry.conversation_id !== null && this.turns.runningIn(entry.conversation_id)) {
        label = "Waiting for the current reply\u2026";
      }
      this.log.pendingLabel(entry.client_msg_id, label);
    }
  }

  #renderComposer() {
    const turn = this.credentials ? this.turns.runningIn(this.conversationId) : null;
    this.view.renderComposer({ running: turn !== null, cancelling: Boolean(turn && turn.cancelling) });
  }

  #renderChoices() {
    this.view.renderChoices(this.#currentChoices());
  }

  #currentChoices() {
    if (!this.credentials || this.turns.runningIn(this.conversationId)) return [];
    if (this.outbox.entries.some((entry) => inView(entry, this.conversationId, this.draftKey))) return [];
    return parseChoices(this.log.lastReplyText());
  }

  #renderConversations() {
    this.view.renderConversations(this.conversations.items, this.conversationId);
  }

  /** "Now" and the user's zone, for due times in words. */
  #clock() {
    return { now: new Date(), zone: this.zone };
  }

  /** @param {number | null} [freshId] */
  #renderTasks(freshId = null) {
    const { now, zone } = this.#clock();
    const shown = this.tasks.list(this.filter, now);
    const filtered = JSON.stringify(this.filter) !== JSON.stringify(defaultFilter());
    this.taskPanel.setTags(this.tasks.tags());
    this.taskPanel.render(shown, this.tasks.counts(shown), { now, zone, filtered, freshId });
  }

  #renderReminders() {
    const shown = this.reminders.list();
    this.toasts.render(shown, this.#clock());
    if (this.credentials) this.storage.set("reminders", shown);
  }

  #renderNotifyButton() {
    this.taskPanel.showNotifyButton(notificationPermission() === "default");
  }
}

/**
 * Build the widget into the page (from the loader).
 * @param {Embed} embed  what the script tag said
 * @returns {TodoChatApi}
 */
export function start(embed) {
  return new Widget(readConfig(embed, window.location.href)).mount();
}

// @ts-check
/* The widget's composition root: it builds the state, the DOM and one controller per concern,
 * wires the person's intents and the server's frames to them, and owns what spans them all
 * (entering the app after a login, clearing it after a log out, the panel being open).
 *
 *   session-controller.js        login and signup, the tokens, the time zone, logging out
 *   devices-controller.js        the signed-in devices
 *   conversations-controller.js  the conversation list
 *   chat-controller.js           the conversation on screen: history, sending, streaming replies
 *   tasks-controller.js          the task panel, its filter, live task.* events
 *   reminders-controller.js      reminder toasts and notifications
 *   sync-controller.js           REST snapshots and the live events on top of them
 *
 * The loader, chat-widget.js, calls start() with what its script tag says.
 */

import { Api } from "./api.js";
import { readConfig } from "./config.js";
import { Connection, OutboxSender } from "./connection.js";
import { ChatController } from "./chat-controller.js";
import { ConversationsController } from "./conversations-controller.js";
import { DevicesController } from "./devices-controller.js";
import { Clock, browserZone } from "./due.js";
import { Outbox } from "./outbox.js";
import { RemindersController } from "./reminders-controller.js";
import { View } from "./render.js";
import { SessionController } from "./session-controller.js";
import { scopedStorage } from "./storage.js";
import { SyncController } from "./sync-controller.js";
import { TasksController } from "./tasks-controller.js";

/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./config.js").Config} Config */
/** @typedef {import("./config.js").Embed} Embed */

/** How often due times in words ("due in 5 min") are brought up to date. */
const CLOCK_TICK_MS = 30_000;

/**
 * The page's handle on the widget: `window.TodoChat`.
 * @typedef {object} TodoChatApi
 * @property {() => void} open
 * @property {() => void} close
 * @property {() => void} toggle
 */

class Widget {
  /** @param {Config} config */
  constructor(config) {
    this.config = config;
    this.storage = scopedStorage(`todochat:${config.server}:`);
    const storage = this.storage;
    const api = new Api(config.server);
    this.outbox = new Outbox(storage.get("outbox") || [], (entries) => storage.set("outbox", entries));
    /** The user's time zone (the server's setting); the browser's until the server says. */
    this.clock = new Clock(browserZone() || "UTC");

    // The controllers are built below; these callbacks run only once the widget is mounted.
    this.view = new View(config.title, {
      setOpen: (open) => this.#setOpen(open),
      logout: () => this.session.logOut(),
      submitAuth: () => this.session.submitAuth(),
      toggleAuthMode: () => this.session.setAuthMode(this.session.authMode === "login" ? "signup" : "login"),
      newConversation: () => this.chat.select(null, { focus: true }),
      selectConversation: (id) => this.chat.select(id, { focus: true }),
      loadEarlier: () => this.chat.loadEarlier(),
      send: (text) => this.chat.submit(text),
      stop: () => this.chat.cancel(),
      showDevices: (open) => this.devices.show(open),
      endSession: (sessionId) => this.devices.end(sessionId),
      logoutAll: () => this.devices.logOutEverywhere(),
    });
    const view = this.view;
    const conn = new Connection(config.wsUrl, {
      authFrame: () => this.session.authFrame(),
      onFrame: (frame) => this.sync.onFrame(frame),
      onState: (state, detail) => this.#onConnState(state, detail),
      onUnauthorized: () => this.session.onUnauthorized(),
      onAuthFailed: (reason) => this.session.signOut({ expired: true, reason }),
    });
    this.conn = conn;
    const sender = new OutboxSender(conn, this.outbox, {
      userId: () => (this.session.credentials ? this.session.credentials.userId : null),
      paused: () => this.sync.events.holding,
      busy: (conversationId) => this.chat.turns.runningIn(conversationId) !== null,
      onSent: () => this.chat.refreshPendingLabels(),
    });
    this.sender = sender;

    const session = new SessionController({
      config,
      api,
      storage,
      view,
      conn,
      outbox: this.outbox,
      hooks: {
        entered: (options) => this.#enterApp(options),
        signedOut: () => {
          this.#resetData();
          this.chat.clearLog();
          this.chat.renderChoices();
        },
        lastSeq: () => this.sync.events.lastSeq,
        zoneChanged: (zone) => {
          this.clock.setZone(zone);
          this.tasks.render();
          this.reminders.render();
        },
      },
    });
    this.session = session;
    this.devices = new DevicesController({ view, conn, session });
    const conversations = new ConversationsController({ view, session, current: () => this.chat.conversationId });
    this.conversations = conversations;
    const chat = new ChatController({ view, storage, conn, sender, outbox: this.outbox, session, conversations });
    this.chat = chat;
    const tasks = new TasksController({ view, clock: this.clock, session, load: () => this.sync.loadTasks() });
    this.tasks = tasks;
    const reminders = new RemindersController({
      view,
      storage,
      conn,
      clock: this.clock,
      session,
      tasks,
      openPanel: () => this.#setOpen(true),
    });
    this.reminders = reminders;
    this.sync = new SyncController({
      view,
      storage,
      sender,
      session,
      conversations,
      chat,
      tasks,
      handlers: {
        hello: (f) => {
          session.onHello(f);
          this.sync.onHello(f);
        },
        "auth.refreshed": (f) => session.onRefreshed(f),
        ack: (f) => chat.onAck(f),
        message: (f) => chat.onMessage(f),
        "turn.start": (f) => chat.onTurnStart(f),
        delta: (f) => chat.onDelta(f),
        "tool.call": (f) => chat.onToolCall(f),
        "tool.result": (f) => chat.onToolResult(f),
        "turn.end": (f) => chat.onTurnEnd(f),
        "task.created": (f) => this.#onTask(f),
        "task.updated": (f) => this.#onTask(f),
        "task.deleted": (f) => this.#onTask(f),
        reminder: (f) => reminders.onReminder(f),
        "reminder.dismissed": (f) => reminders.onDismissed(f),
        "conversation.deleted": (f) => chat.onConversationDeleted(f),
        error: (f) => chat.onError(f),
        resync_required: (f) => this.sync.onResync(f),
      },
    });
    this.#resetData();
  }

  /** @returns {TodoChatApi} */
  mount() {
    const attach = () => {
      document.body.append(this.view.host);
      const open = this.storage.get("open");
      this.#setOpen(open === undefined ? this.config.open : open, { focus: false });
      if (this.session.credentials) this.#enterApp({ focus: false });
      else this.session.showAuth();
    };
    if (document.body) attach();
    else document.addEventListener("DOMContentLoaded", attach, { once: true });
    window.addEventListener("online", () => {
      if (this.session.credentials) this.session.credentials.retryNow();
      this.conn.retryNow();
    });
    // A hidden tab's timers are throttled (to once a minute, or less): a refresh may be overdue.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.session.credentials) this.session.credentials.check();
    });
    window.addEventListener("offline", () => this.conn.wentOffline());
    // "due in 5 min" becomes "overdue by 1 min" without an event: redraw on a slow clock.
    setInterval(() => {
      if (!this.session.credentials) return;
      this.tasks.render();
      this.reminders.render();
    }, CLOCK_TICK_MS);
    return {
      open: () => this.#setOpen(true),
      close: () => this.#setOpen(false),
      toggle: () => this.#setOpen(!this.view.isOpen),
    };
  }

  /** Forget what was shown: another session starts, or none. */
  #resetData() {
    this.conversations.reset();
    this.chat.reset();
    this.tasks.reset();
    this.reminders.reset();
    this.sync.reset();
    this.outbox.inflight = null;
    this.sender.reset();
  }

  /**
   * A session is in place (a login, or a reload with a stored one): show the app and connect.
   * @param {{ focus: boolean, signedUp?: boolean }} options
   */
  #enterApp({ focus, signedUp = false }) {
    const credentials = this.session.credentials;
    if (!credentials) return;
    this.#resetData();
    const seq = this.storage.get("seq");
    const mine = Boolean(seq && seq.userId === credentials.userId);
    this.sync.events.lastSeq = seq && mine ? seq.seq : null;
    if (mine) this.reminders.restore();
    this.view.showApp(credentials.email);
    this.chat.clearLog();
    this.conversations.render();
    this.tasks.render();
    this.reminders.render();
    this.tasks.renderNotifyButton();
    this.chat.renderEmpty();
    this.chat.renderComposer();
    credentials.start(); // a stored token that is due (a reload after a while) is refreshed now
    this.conn.start();
    if (focus && this.view.isOpen) this.view.focusInput();
    this.session.syncZone({ signedUp });
  }

  /** @param {import("./protocol.js").TaskFrame} frame  the panel follows it; a reminder it dealt with closes */
  #onTask(frame) {
    this.tasks.onTask(frame);
    this.reminders.onTask(frame);
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
    else if (this.session.credentials) this.view.focusInput();
    else this.view.focusEmail();
  }

  /**
   * @param {ConnectionState} state
   * @param {string} detail
   */
  #onConnState(state, detail) {
    this.view.showConnection(state);
    this.session.connectionChanged(state);
    if (detail === "too-many") this.view.notice("Too many open chat windows for this account: close some tabs.");
    this.chat.refreshPendingLabels();
    this.chat.renderComposer();
    if (state === "online") this.view.hideNotice();
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

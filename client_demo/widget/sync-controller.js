// @ts-check
/* Keeps the REST snapshot and the live events consistent. Each frame with a seq is applied once
 * (event-stream.js) and handed to its handler; while a snapshot loads (everything after a login or
 * a `resync_required`, or the task list for a new filter) the events wait, then apply on top of it.
 * One load at a time: one asked for meanwhile runs when the one under way is done.
 */

import { errorMessage, errorStatus } from "./api.js";
import { EventStream } from "./event-stream.js";

/** @typedef {import("./protocol.js").ServerFrame} ServerFrame */

/**
 * One handler per frame type, each given its own kind of frame.
 * @typedef {{ [K in ServerFrame["type"]]?: (frame: Extract<ServerFrame, { type: K }>) => void }} Handlers
 */

/**
 * @typedef {object} SyncDeps
 * @property {import("./render.js").View} view
 * @property {import("./storage.js").Store} storage
 * @property {import("./connection.js").OutboxSender} sender
 * @property {import("./session-controller.js").SessionController} session
 * @property {import("./conversations-controller.js").ConversationsController} conversations
 * @property {import("./chat-controller.js").ChatController} chat
 * @property {import("./tasks-controller.js").TasksController} tasks
 * @property {Handlers} handlers
 */

export class SyncController {
  /** @param {SyncDeps} deps */
  constructor({ view, storage, sender, session, conversations, chat, tasks, handlers }) {
    this.view = view;
    this.storage = storage;
    this.sender = sender;
    this.session = session;
    this.conversations = conversations;
    this.chat = chat;
    this.tasks = tasks;
    this.handlers = handlers;
    this.events = new EventStream({
      onSeq: (seq) => {
        const credentials = this.session.credentials;
        if (credentials) this.storage.set("seq", { userId: credentials.userId, seq });
      },
    });
    /** The REST snapshot has been loaded since the session started (or since a resync). */
    this.loaded = false;
    this.reloadAgain = false;
    /** A task list load (a filter change) is under way; another was asked for meanwhile. */
    this.loadingTasks = false;
    this.tasksAgain = false;
  }

  reset() {
    this.loaded = false;
    this.reloadAgain = false;
    this.loadingTasks = false;
    this.tasksAgain = false;
    this.events.release();
  }

  /** @param {ServerFrame} frame */
  onFrame(frame) {
    if (this.events.receive(frame) === "apply") this.#dispatch(frame);
  }

  /** @param {ServerFrame} frame */
  #dispatch(frame) {
    const handler = /** @type {((frame: ServerFrame) => void) | undefined} */ (this.handlers[frame.type]);
    if (handler) handler(frame);
  }

  /** @param {import("./protocol.js").HelloFrame} frame */
  onHello(frame) {
    this.events.hello(frame.last_seq);
    if (!this.loaded) this.#reload();
    this.sender.flush();
  }

  /** @param {import("./protocol.js").ResyncFrame} frame */
  onResync(frame) {
    // The server cannot replay what we missed: take REST's state, then continue from its seq.
    this.events.moveTo(frame.last_seq);
    this.chat.turns.clear();
    this.loaded = false;
    this.#reload();
  }

  /** Load conversations, tasks and the conversation on screen from REST; events wait meanwhile. */
  async #reload() {
    if (this.events.holding) {
      this.reloadAgain = true;
      return;
    }
    const session = this.session.credentials;
    if (!session) return;
    this.events.hold();
    try {
      do {
        this.reloadAgain = false;
        const user = this.session.userApi();
        const [convs, tasks] = await Promise.all([user.conversations(), user.tasks(this.tasks.filter)]);
        if (this.session.credentials !== session) return;
        this.conversations.list.merge(convs.data, () => false);
        this.tasks.list.replace(tasks.data);
        this.conversations.render();
        this.tasks.render();
        /** @type {number | null | undefined} */
        let target = this.chat.conversationId;
        if (!this.loaded) {
          const stored = this.storage.get("conversation");
          const newest = this.conversations.list.items[0];
          target = stored === undefined && newest ? newest.id : stored;
        }
        if (target !== null && target !== undefined && !this.conversations.list.has(target)) target = null;
        await this.chat.load(target === undefined ? null : target, { keepDraft: true });
      } while (this.reloadAgain && this.session.credentials === session);
      this.loaded = true;
    } catch (error) {
      if (this.session.credentials === session && errorStatus(error) !== 401) {
        this.view.notice(`Could not load your data: ${errorMessage(error)}`);
      }
    } finally {
      // Another session started meanwhile: its own reload holds (and releases) its events.
      if (this.session.credentials === session) {
        for (const frame of this.events.release()) this.#dispatch(frame);
        this.chat.renderComposer();
        this.sender.flush();
      }
    }
  }

  /** The task list for the current filter from REST; events wait meanwhile, then apply on top. */
  async loadTasks() {
    if (this.events.holding) {
      // One load at a time; the one under way goes again, with the filter as it is by then.
      if (this.loadingTasks) this.tasksAgain = true;
      else this.reloadAgain = true;
      return;
    }
    const session = this.session.credentials;
    if (!session) return;
    this.events.hold();
    this.loadingTasks = true;
    try {
      do {
        this.tasksAgain = false;
        const page = await this.session.userApi().tasks(this.tasks.filter);
        if (this.session.credentials !== session) return;
        this.tasks.list.replace(page.data);
      } while (this.tasksAgain);
    } catch (error) {
      if (this.session.credentials === session && errorStatus(error) !== 401) {
        this.view.notice(`Could not load your tasks: ${errorMessage(error)}`);
      }
    } finally {
      this.loadingTasks = false;
      if (this.session.credentials === session) {
        for (const frame of this.events.release()) this.#dispatch(frame);
        this.tasks.render();
        this.sender.flush();
        if (this.reloadAgain) this.#reload(); // asked for while the tasks loaded (a resync)
      }
    }
  }
}

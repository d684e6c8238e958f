// @ts-check
/* The chat view: which conversation is on screen, its history pages, the messages typed into it
 * (the outbox, until acked), the replies streaming in (turns.js), Stop, and the "which one?"
 * choices. It applies the chat frames and asks log.js and render.js to draw them.
 */

import { errorMessage, errorStatus } from "./api.js";
import { MAX_MESSAGE_CHARS, PAGE_SIZE } from "./config.js";
import { MessageLog } from "./log.js";
import { inView, randomId } from "./outbox.js";
import { parseChoices } from "./text.js";
import { Turns } from "./turns.js";

/**
 * @typedef {object} ChatDeps
 * @property {import("./render.js").View} view
 * @property {import("./storage.js").Store} storage
 * @property {import("./connection.js").Connection} conn
 * @property {import("./connection.js").OutboxSender} sender
 * @property {import("./outbox.js").Outbox} outbox
 * @property {import("./session-controller.js").SessionController} session
 * @property {import("./conversations-controller.js").ConversationsController} conversations
 */

export class ChatController {
  /** @param {ChatDeps} deps */
  constructor({ view, storage, conn, sender, outbox, session, conversations }) {
    this.view = view;
    this.storage = storage;
    this.conn = conn;
    this.sender = sender;
    this.outbox = outbox;
    this.session = session;
    this.conversations = conversations;
    this.turns = new Turns();
    this.log = new MessageLog(view.el.log, view.el.scroller);
    /** @type {number | null} the conversation on screen; null: a new one, created by its first message */
    this.conversationId = null;
    /** Messages typed into a new conversation share this key until the first one creates it. */
    this.draftKey = "";
    /** More history exists before the oldest message shown. */
    this.hasMore = false;
  }

  reset() {
    this.conversationId = null;
    this.draftKey = this.storage.get("draft") || this.#newDraft();
    this.turns.clear();
    this.log.clear();
    this.hasMore = false;
  }

  #newDraft() {
    const key = randomId("d-");
    this.storage.set("draft", key);
    return key;
  }

  // --- frames ----------------------------------------------------------------------------------

  /** @param {import("./protocol.js").AckFrame} frame */
  onAck(frame) {
    const entry = this.outbox.ack(frame);
    this.sender.settled();
    if (entry && entry.conversation_id === null) {
      // The first message of a new conversation created it.
      if (this.conversationId === null && this.draftKey === entry.draft) {
        this.conversationId = frame.conversation_id;
        this.storage.set("conversation", frame.conversation_id);
      }
      this.conversations.created(frame.conversation_id, entry.message);
    }
    this.log.acked(frame, this.conversationId);
    this.refreshPendingLabels();
    this.sender.flush();
  }

  /** @param {import("./protocol.js").MessageFrame} frame */
  onMessage(frame) {
    const message = frame.message;
    this.turns.message(message);
    const elsewhere = frame.conversation_id !== this.conversationId;
    this.conversations.activity(frame.conversation_id, message.created_at, elsewhere);
    if (!elsewhere) {
      this.#withScroll(() => this.log.upsert(message));
      this.renderChoices();
    }
  }

  /** @param {import("./protocol.js").TurnStartFrame} frame */
  onTurnStart(frame) {
    const turn = this.turns.start(frame);
    if (turn.conversationId === this.conversationId && !this.log.hasReply(turn.id)) {
      this.#withScroll(() => this.log.stream(turn));
    }
    this.renderComposer();
    this.renderChoices();
    this.refreshPendingLabels();
  }

  /** @param {import("./protocol.js").DeltaFrame} frame */
  onDelta(frame) {
    const turn = this.turns.delta(frame);
    if (turn && turn.conversationId === this.conversationId) this.#withScroll(() => this.log.renderStream(turn));
  }

  /** @param {import("./protocol.js").ToolCallFrame} frame */
  onToolCall(frame) {
    const turn = this.turns.toolCall(frame);
    if (turn && turn.conversationId === this.conversationId) {
      this.#withScroll(() => this.log.renderTool(turn, frame.call_id));
    }
  }

  /** @param {import("./protocol.js").ToolResultFrame} frame */
  onToolResult(frame) {
    const turn = this.turns.toolResult(frame);
    if (turn && turn.conversationId === this.conversationId) this.log.renderTool(turn, frame.call_id);
  }

  /** @param {import("./protocol.js").TurnEndFrame} frame */
  onTurnEnd(frame) {
    this.turns.end(frame);
    this.log.endTurn(frame); // a bubble still streaming: no final `message` came (conversation deleted)
    if (frame.status === "failed" && frame.reason && frame.conversation_id === this.conversationId) {
      this.view.notice(`The assistant could not finish: ${frame.reason}`);
    }
    this.renderComposer();
    this.renderChoices();
    this.refreshPendingLabels();
    this.sender.flush(); // a message waiting for this conversation can go now
  }

  /** @param {import("./protocol.js").ConversationDeletedFrame} frame */
  onConversationDeleted(frame) {
    this.conversations.deleted(frame.conversation_id);
    if (this.conversationId === frame.conversation_id) this.select(null, {});
  }

  /** @param {import("./protocol.js").ErrorFrame} frame */
  onError(frame) {
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
      this.renderComposer();
    }
    this.view.notice(frame.detail || frame.code);
  }

  // --- conversations and history ---------------------------------------------------------------

  /**
   * @param {number | null} id
   * @param {{ focus?: boolean }} options
   */
  async select(id, { focus = false }) {
    this.storage.set("conversation", id);
    try {
      await this.load(id, { keepDraft: false });
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
  async load(id, { keepDraft }) {
    const changed = id !== this.conversationId;
    this.conversationId = id;
    if (id === null && (changed || !keepDraft)) this.draftKey = this.#newDraft();
    this.conversations.opened(id);
    this.clearLog();
    this.view.showEmpty(false); // not "empty" while its history is on the way
    if (id !== null) {
      const page = await this.session.userApi().messages(id, { limit: PAGE_SIZE });
      if (this.conversationId !== id) return;
      this.clearLog();
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
    this.renderEmpty();
    this.renderComposer();
    this.renderChoices();
    this.refreshPendingLabels();
    this.log.scrollToEnd();
  }

  async loadEarlier() {
    const id = this.conversationId;
    const before = this.log.oldestId;
    if (id === null || before === null) return;
    this.view.loadEarlierButton({ disabled: true });
    try {
      const page = await this.session.userApi().messages(id, { limit: PAGE_SIZE, before });
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
  submit(raw) {
    const text = String(raw || "");
    const credentials = this.session.credentials;
    if (!text.trim() || !credentials) return;
    if (text.length > MAX_MESSAGE_CHARS) {
      this.view.notice(`Messages are limited to ${MAX_MESSAGE_CHARS.toLocaleString()} characters.`);
      return;
    }
    const entry = this.outbox.add({
      message: text,
      conversationId: this.conversationId,
      draft: this.draftKey,
      userId: credentials.userId,
    });
    this.view.clearInput();
    this.log.pending(entry);
    this.refreshPendingLabels();
    this.renderEmpty();
    this.renderChoices();
    this.log.scrollToEnd();
    this.view.focusInput();
    this.sender.flush();
    this.refreshPendingLabels();
  }

  cancel() {
    const turn = this.turns.runningIn(this.conversationId);
    if (!turn) return;
    if (this.conn.send({ type: "cancel", turn_id: turn.id })) {
      this.turns.cancel(turn.id);
      this.renderComposer();
    } else {
      this.view.notice("Offline: the reply cannot be stopped until the connection is back.");
    }
  }

  // --- drawing ---------------------------------------------------------------------------------

  clearLog() {
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
      this.renderEmpty();
    });
  }

  renderEmpty() {
    this.view.showEmpty(this.log.isEmpty && this.session.credentials !== null);
  }

  refreshPendingLabels() {
    for (const entry of this.outbox.entries) {
      let label = "Sending\u2026";
      if (!this.conn.online) label = "Queued: sends when back online";
      else if (entry.conversation_id !== null && this.turns.runningIn(entry.conversation_id)) {
        label = "Waiting for the current reply\u2026";
      }
      this.log.pendingLabel(entry.client_msg_id, label);
    }
  }

  renderComposer() {
    const turn = this.session.credentials ? this.turns.runningIn(this.conversationId) : null;
    this.view.renderComposer({ running: turn !== null, cancelling: Boolean(turn && turn.cancelling) });
  }

  renderChoices() {
    this.view.renderChoices(this.#currentChoices());
  }

  #currentChoices() {
    if (!this.session.credentials || this.turns.runningIn(this.conversationId)) return [];
    if (this.outbox.entries.some((entry) => inView(entry, this.conversationId, this.draftKey))) return [];
    return parseChoices(this.log.lastReplyText());
  }
}

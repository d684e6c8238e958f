// @ts-check
/* The widget's DOM: its shadow root, the panel and its parts (header, login form, sidebar
 * with the conversations and signed-in devices, notice, composer, choices). It draws what the
 * controllers tell it and turns clicks and keys into intents (widget.js hands each to its
 * controller); the message log, the task panel and the reminder toasts have modules of their
 * own (log.js, task-panel.js, toasts.js). Everything from the server is set with textContent.
 */

import { NOTICE_MS } from "./config.js";
import { part, pick, reconcile } from "./dom.js";
import { TEMPLATE } from "./markup.js";
import { STYLES } from "./styles.js";
import { shortTime } from "./text.js";

/** @typedef {import("./protocol.js").DeviceSession} DeviceSession */
/** @typedef {import("./conversations.js").ConversationItem} ConversationItem */
/** @typedef {import("./connection.js").ConnectionState} ConnectionState */
/** @typedef {import("./text.js").Choice} Choice */
/** @typedef {"login" | "signup"} AuthMode */

/**
 * What the person asks for; widget.js hands each to the controller that does it.
 * @typedef {object} Intents
 * @property {(open: boolean) => void} setOpen  the launcher, Minimize, Escape
 * @property {() => void} logout
 * @property {() => void} submitAuth
 * @property {() => void} toggleAuthMode
 * @property {() => void} newConversation
 * @property {(id: number) => void} selectConversation
 * @property {() => void} loadEarlier
 * @property {(text: string) => void} send  the composer, an example, a choice
 * @property {() => void} stop
 * @property {(open: boolean) => void} showDevices  the "Signed-in devices" disclosure
 * @property {(sessionId: string) => void} endSession
 * @property {() => void} logoutAll
 */

const CONNECTION_LABELS = {
  connecting: "Connecting\u2026",
  online: "Online",
  reconnecting: "Reconnecting\u2026",
  offline: "Offline",
};

/** The widget's elements, by role. */
function elements(/** @type {ShadowRoot} */ root) {
  const button = (/** @type {string} */ selector) => pick(root, selector, HTMLButtonElement);
  return {
    launcher: button(".launcher"),
    panel: part(root, ".panel"),
    title: part(root, ".title"),
    conn: part(root, ".conn"),
    connText: part(root, ".conn-text"),
    who: part(root, ".who"),
    logout: button(".logout"),
    minimize: button(".minimize"),
    menu: button(".menu-btn"),
    authView: part(root, ".auth-view"),
    authForm: pick(root, ".auth", HTMLFormElement),
    authTitle: part(root, ".auth-title"),
    authSubmit: button(".auth-submit"),
    authToggle: button(".auth-toggle"),
    authSwitchText: part(root, ".auth-switch-text"),
    authError: part(root, ".auth-error"),
    email: pick(root, "#tc-email", HTMLInputElement),
    password: pick(root, "#tc-password", HTMLInputElement),
    passwordHint: part(root, "#tc-password-hint"),
    appView: part(root, ".app-view"),
    scrim: part(root, ".scrim"),
    newConv: button(".new-conv"),
    convList: part(root, ".conv-list"),
    convEmpty: part(root, ".conv-empty"),
    devicesToggle: button(".devices-toggle"),
    devicesBody: part(root, ".devices-body"),
    deviceList: part(root, ".device-list"),
    logoutAll: button(".logout-all"),
    scroller: part(root, ".scroller"),
    loadEarlier: button(".load-earlier"),
    empty: part(root, ".empty"),
    log: part(root, ".log"),
    choices: part(root, ".choices"),
    notice: part(root, ".notice"),
    noticeText: part(root, ".notice-text"),
    noticeClose: button(".notice-close"),
    composer: pick(root, ".composer", HTMLFormElement),
    input: pick(root, "#tc-input", HTMLTextAreaElement),
    stop: button(".stop"),
    stopText: part(root, ".stop span"),
  };
}

export class View {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #noticeTimer = undefined;

  /**
   * @param {string} title  the panel's title
   * @param {Intents} intents
   */
  constructor(title, intents) {
    this.host = document.createElement("todo-chat-widget");
    this.root = this.host.attachShadow({ mode: "open" });
    this.#adoptStyles();
    const holder = document.createElement("div");
    holder.innerHTML = TEMPLATE; // static markup, see markup.js
    this.root.append(...holder.childNodes);
    this.el = elements(this.root);
    this.intents = intents;
    this.el.title.textContent = title;
    this.el.launcher.setAttribute("aria-label", `Open the ${title}`);
    this.#bind();
  }

  #adoptStyles() {
    // A constructed sheet is not subject to a host page's CSP on inline <style>.
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
      this.root.adoptedStyleSheets = [sheet];
    } catch (_) {
      const style = document.createElement("style");
      style.textContent = STYLES;
      this.root.append(style);
    }
  }

  #bind() {
    const { el, intents } = this;
    el.launcher.addEventListener("click", () => intents.setOpen(true));
    el.minimize.addEventListener("click", () => intents.setOpen(false));
    el.logout.addEventListener("click", () => intents.logout());
    el.menu.addEventListener("click", () => this.setDrawer(!this.drawerOpen));
    el.scrim.addEventListener("click", () => this.setDrawer(false));
    el.panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      if (this.drawerOpen) {
        this.setDrawer(false);
        el.menu.focus();
      } else {
        intents.setOpen(false);
      }
    });
    el.authForm.addEventListener("submit", (event) => {
      event.preventDefault();
      intents.submitAuth();
    });
    el.authToggle.addEventListener("click", () => intents.toggleAuthMode());
    el.newConv.addEventListener("click", () => {
      this.setDrawer(false);
      intents.newConversation();
    });
    el.loadEarlier.addEventListener("click", () => intents.loadEarlier());
    el.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      intents.send(el.input.value);
    });
    el.input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; never while an IME is composing a character.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        intents.send(el.input.value);
      }
    });
    el.input.addEventListener("input", () => this.#autosize());
    el.stop.addEventListener("click", () => intents.stop());
    for (const button of this.root.querySelectorAll(".example")) {
      button.addEventListener("click", () => intents.send(button.textContent || ""));
    }
    el.noticeClose.addEventListener("click", () => this.hideNotice());
    el.devicesToggle.addEventListener("click", () => intents.showDevices(!this.devicesOpen));
    el.logoutAll.addEventListener("click", () => intents.logoutAll());
  }

  // --- the panel ------------------------------------------------------------------------------

  get isOpen() {
    return !this.el.panel.hidden;
  }

  /** @param {boolean} open */
  showOpen(open) {
    this.el.panel.hidden = !open;
    this.el.launcher.hidden = open;
    this.el.launcher.setAttribute("aria-expanded", String(open));
  }

  get drawerOpen() {
    return this.el.panel.classList.contains("drawer-open");
  }

  /**
   * The drawer that holds the sidebar on narrow screens.
   * @param {boolean} open
   */
  setDrawer(open) {
    this.el.panel.classList.toggle("drawer-open", open);
    this.el.menu.setAttribute("aria-expanded", String(open));
    this.el.scrim.hidden = !open;
    if (open) (this.el.convList.querySelector("button") || this.el.newConv).focus();
  }

  /** @param {ConnectionState} state */
  showConnection(state) {
    this.el.conn.dataset.state = state;
    this.el.connText.textContent = CONNECTION_LABELS[state] || state;
  }

  /** @param {string} text */
  notice(text) {
    this.el.noticeText.textContent = text;
    this.el.notice.hidden = false;
    clearTimeout(this.#noticeTimer);
    this.#noticeTimer = setTimeout(() => this.hideNotice(), NOTICE_MS);
  }

  hideNotice() {
    this.el.notice.hidden = true;
    this.el.noticeText.textContent = "";
  }

  // --- logging in ------------------------------------------------------------------------------

  showAuth() {
    this.el.appView.hidden = true;
    this.el.authView.hidden = false;
    this.el.who.hidden = true;
    this.el.logout.hidden = true;
    this.showDevices(false);
    this.setDrawer(false);
    this.el.panel.classList.remove("signed-in");
  }

  /** @param {AuthMode} mode */
  setAuthMode(mode) {
    const signup = mode === "signup";
    this.el.authTitle.textContent = signup ? "Create your account" : "Log in";
    this.el.authSubmit.textContent = signup ? "Sign up" : "Log in";
    this.el.authSwitchText.textContent = signup ? "Already have an account?" : "New here?";
    this.el.authToggle.textContent = signup ? "Log in instead" : "Create an account";
    this.el.password.autocomplete = signup ? "new-password" : "current-password";
    this.el.passwordHint.hidden = !signup;
    this.el.authError.textContent = "";
  }

  /** @param {string} text */
  authError(text) {
    this.el.authError.textContent = text;
  }

  /** @param {boolean} busy */
  authBusy(busy) {
    this.el.authSubmit.disabled = busy;
  }

  credentials() {
    return { email: this.el.email.value.trim(), password: this.el.password.value };
  }

  /** @param {string} email */
  showApp(email) {
    this.el.password.value = "";
    this.el.authView.hidden = true;
    this.el.appView.hidden = false;
    this.el.who.hidden = false;
    this.el.who.textContent = email;
    this.el.logout.hidden = false;
    this.el.panel.classList.add("signed-in");
  }

  // --- focus -----------------------------------------------------------------------------------

  focusInput() {
    this.el.input.focus();
  }

  focusEmail() {
    this.el.email.focus();
  }

  focusPassword() {
    this.el.password.focus();
  }

  focusLauncher() {
    this.el.launcher.focus();
  }

  // --- the chat column --------------------------------------------------------------------------

  clearInput() {
    this.el.input.value = "";
    this.#autosize();
  }

  #autosize() {
    const input = this.el.input;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight + 2, 140)}px`;
  }

  /**
   * The "What needs doing?" prompt of an empty conversation.
   * @param {boolean} show
   */
  showEmpty(show) {
    this.el.empty.hidden = !show;
  }

  /** @param {{ hidden?: boolean, disabled?: boolean }} state */
  loadEarlierButton({ hidden, disabled }) {
    if (hidden !== undefined) this.el.loadEarlier.hidden = hidden;
    if (disabled !== undefined) this.el.loadEarlier.disabled = disabled;
  }

  /**
   * Stop, while a turn runs in the conversation on screen.
   * @param {{ running: boolean, cancelling: boolean }} turn
   */
  renderComposer({ running, cancelling }) {
    const stop = this.el.stop;
    stop.hidden = !running;
    stop.disabled = running && cancelling;
    this.el.stopText.textContent = running && cancelling ? "Stopping\u2026" : "Stop";
    stop.setAttribute("aria-label", running && cancelling ? "Stopping the reply" : "Stop the reply");
  }

  /**
   * The tasks a "which one?" reply offers, as buttons that answer `task <id>`.
   * @param {Choice[]} choices
   */
  renderChoices(choices) {
    const box = this.el.choices;
    box.replaceChildren();
    box.hidden = choices.length === 0;
    for (const choice of choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip choice";
      button.textContent = choice.label;
      button.addEventListener("click", () => this.intents.send(`task ${choice.id}`));
      box.append(button);
    }
  }

  // --- the sidebar ------------------------------------------------------------------------------

  /**
   * @param {ConversationItem[]} conversations  newest activity first
   * @param {number | null} currentId
   */
  renderConversations(conversations, currentId) {
    this.el.convEmpty.hidden = conversations.length > 0;
    reconcile(
      this.el.convList,
      conversations,
      (conversation) => conversation.id,
      (conversation) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "conv";
        const title = document.createElement("span");
        title.className = "conv-title";
        const dot = document.createElement("span");
        dot.className = "unread";
        dot.setAttribute("role", "img");
        dot.setAttribute("aria-label", "new messages");
        const time = document.createElement("span");
        time.className = "conv-time";
        button.append(title, dot, time);
        button.addEventListener("click", () => {
          this.setDrawer(false);
          this.intents.selectConversation(conversation.id);
        });
        item.append(button);
        return item;
      },
      (item, conversation) => {
        const button = pick(item, ".conv", HTMLButtonElement);
        part(button, ".conv-title").textContent = conversation.title;
        button.title = conversation.title;
        part(button, ".conv-time").textContent = shortTime(conversation.updated_at);
        part(button, ".unread").hidden = !conversation.unread;
        if (conversation.id === currentId) button.setAttribute("aria-current", "true");
        else button.removeAttribute("aria-current");
      },
    );
  }

  // --- the sessions --------------------------------------------------------------------------------

  get devicesOpen() {
    return this.el.devicesToggle.getAttribute("aria-expanded") === "true";
  }

  /** @param {boolean} open */
  showDevices(open) {
    this.el.devicesToggle.setAttribute("aria-expanded", String(open));
    this.el.devicesBody.hidden = !open;
    if (!open) this.el.deviceList.replaceChildren();
  }

  /**
   * The user's sessions: the device each was started on, and when it was last used.
   * @param {DeviceSession[]} sessions  most recently used first
   */
  renderDevices(sessions) {
    reconcile(
      this.el.deviceList,
      sessions,
      (session) => session.id,
      (session) => {
        const item = document.createElement("li");
        item.className = "device";
        const text = document.createElement("span");
        text.className = "device-text";
        const name = document.createElement("span");
        name.className = "device-name";
        const meta = document.createElement("span");
        meta.className = "device-meta";
        text.append(name, meta);
        item.append(text);
        if (!session.current) {
          const end = document.createElement("button");
          end.type = "button";
          end.className = "small-btn device-end";
          end.textContent = "End";
          end.addEventListener("click", () => this.intents.endSession(session.id));
          item.append(end);
        }
        return item;
      },
      (item, session) => {
        const name = part(item, ".device-name");
        name.textContent = session.device;
        name.title = session.device;
        const used = shortTime(session.last_used_at);
        part(item, ".device-meta").textContent = session.current ? "This device" : used ? `Last used ${used}` : "";
        const end = item.querySelector(".device-end");
        if (end) end.setAttribute("aria-label", `End the session on ${session.device}`);
      },
    );
  }
}

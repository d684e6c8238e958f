// @ts-check
/* Todo assistant: an embeddable chat widget. Plain JavaScript, no build step, no dependencies.
 *
 *   <script src="https://host/widget/chat-widget.js" data-server="https://host"></script>
 *
 * This is the loader: a classic script, so the tag above works as it always has. Only a classic
 * script has `document.currentScript` (a module's is null), which is how the data-* attributes
 * and the server are found. It defines `window.TodoChat` at once, then loads the widget's ES
 * modules from beside its own URL with import() (widget.js, which imports the rest); calls made
 * before they are in are queued. The widget speaks only the public protocol (docs/protocol.md).
 */
(function () {
  "use strict";

  /** @typedef {import("./widget.js").TodoChatApi} TodoChatApi */
  const page = /** @type {Window & { TodoChat?: TodoChatApi & { version: string } }} */ (window);
  if (page.TodoChat) return; // embedded twice: the first copy wins

  /** widget.js and every module it imports, directly or not. */
  const MODULES = [
    "widget.js",
    "api.js",
    "chat-controller.js",
    "config.js",
    "connection.js",
    "conversations-controller.js",
    "conversations.js",
    "credentials.js",
    "devices-controller.js",
    "dom.js",
    "due.js",
    "event-stream.js",
    "log.js",
    "markup.js",
    "outbox.js",
    "reminders-controller.js",
    "reminders.js",
    "render.js",
    "session-controller.js",
    "storage.js",
    "styles.js",
    "sync-controller.js",
    "task-panel.js",
    "tasks-controller.js",
    "tasks.js",
    "text.js",
    "toasts.js",
    "turns.js",
  ];

  const script = document.currentScript instanceof HTMLScriptElement ? document.currentScript : null;
  const src = script && script.src ? script.src : "";
  const data = script ? { ...script.dataset } : {};

  /** @type {TodoChatApi | null} */
  let widget = null;
  /** @type {(keyof TodoChatApi)[]} */
  const queued = [];
  /** @param {keyof TodoChatApi} name */
  const call = (name) => (widget ? widget[name]() : queued.push(name));

  page.TodoChat = Object.freeze({
    version: "1",
    open: () => void call("open"),
    close: () => void call("close"),
    toggle: () => void call("toggle"),
  });

  // The modules are served beside this script, wherever the page is. All of them are fetched at
  // once (modulepreload), not one level of imports after another; tests/widget checks this list.
  const base = src || window.location.href;
  const links = MODULES.map((name) => {
    const link = document.createElement("link");
    link.rel = "modulepreload";
    link.href = new URL(name, base).href;
    (document.head || document.documentElement).append(link);
    return link;
  });
  import(new URL("widget.js", base).href)
    .then(
      (/** @type {typeof import("./widget.js")} */ module) => {
        widget = module.start({ src, data });
        for (const name of queued.splice(0)) widget[name]();
      },
      (error) => console.error("Todo assistant: the widget could not be loaded", error),
    )
    .finally(() => links.forEach((link) => link.remove()));
})();

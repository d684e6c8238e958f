// @ts-check
/* The embed's settings, read from its script tag by the loader (chat-widget.js), and the limits
 * the widget keeps to.
 */

export const MAX_MESSAGE_CHARS = 10000; // the protocol's limit on a chat message
export const PAGE_SIZE = 50; // messages per history page
export const NOTICE_MS = 8000; // how long a notice stays up

/**
 * What the loader read from its `<script>` tag.
 * @typedef {object} Embed
 * @property {string} src  the script's absolute URL ("" for an inline copy)
 * @property {Record<string, string | undefined>} data  its data-* attributes
 */

/**
 * @typedef {object} Config
 * @property {string} server  the backend's base URL, without a trailing slash
 * @property {string} wsUrl  its chat socket
 * @property {string} title  the panel's title
 * @property {boolean} open  open the panel on the first visit
 */

/**
 * @param {Embed} embed
 * @param {string} pageUrl  the embedding page's URL
 * @returns {Config}
 */
export function readConfig(embed, pageUrl) {
  // No data-server: the backend is where the script came from.
  const origin = new URL(embed.src || pageUrl, pageUrl).origin;
  const server = (embed.data.server || origin).replace(/\/+$/, "");
  return {
    server,
    wsUrl: `${server.replace(/^http/i, "ws")}/api/ws`,
    title: embed.data.title || "Todo assistant",
    open: embed.data.open === "true",
  };
}

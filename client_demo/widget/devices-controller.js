// @ts-check
/* The "Signed-in devices" list in the sidebar: loaded when opened, *End* for another session,
 * and *Log out everywhere* (render.js draws it).
 */

import { errorMessage, errorStatus } from "./api.js";

/**
 * @typedef {object} DevicesDeps
 * @property {import("./render.js").View} view
 * @property {import("./connection.js").Connection} conn
 * @property {import("./session-controller.js").SessionController} session
 */

export class DevicesController {
  /** @param {DevicesDeps} deps */
  constructor({ view, conn, session }) {
    this.view = view;
    this.conn = conn;
    this.session = session;
  }

  /** @param {boolean} open */
  async show(open) {
    this.view.showDevices(open);
    if (open) await this.#load();
  }

  async #load() {
    const credentials = this.session.credentials;
    try {
      const page = await this.session.userApi().sessions();
      if (this.session.credentials === credentials && this.view.devicesOpen) this.view.renderDevices(page.data);
    } catch (error) {
      if (errorStatus(error) !== 401) this.view.notice(`Could not load your sessions: ${errorMessage(error)}`);
    }
  }

  /**
   * End another session: its sockets close at once, its tokens are refused.
   * @param {string} sessionId
   */
  async end(sessionId) {
    try {
      await this.session.userApi().endSession(sessionId);
    } catch (error) {
      // 404: it ended meanwhile, which is what was asked.
      if (errorStatus(error) !== 404 && errorStatus(error) !== 401) {
        this.view.notice(`Could not end the session: ${errorMessage(error)}`);
      }
    }
    await this.#load();
  }

  async logOutEverywhere() {
    const credentials = this.session.credentials;
    // This session ends too: its socket must not take the server's 4401 for an ended session.
    this.conn.stop();
    try {
      await this.session.userApi().logoutAll();
    } catch (error) {
      if (this.session.credentials === credentials && errorStatus(error) !== 401) {
        this.view.notice(`Could not log out everywhere: ${errorMessage(error)}`);
        this.conn.start();
        return;
      }
    }
    if (this.session.credentials === credentials) this.session.signOut({});
  }
}

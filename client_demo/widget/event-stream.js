// @ts-check
/* DOM-free: where this tab stands in the user's event log. Each frame with a seq is applied once
 * (a replay after a resume may overlap what was applied), and frames that arrive while a REST
 * snapshot loads are held, then applied on top of it.
 */

/** @typedef {import("./protocol.js").ServerFrame} ServerFrame */

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

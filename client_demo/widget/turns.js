// @ts-check
/* DOM-free: the assistant's replies being streamed, assembled from `turn.start`, `delta`,
 * `tool.call`, `tool.result`, `message` and `turn.end` (log.js draws them).
 */

/** @typedef {import("./protocol.js").Message} Message */
/** @typedef {import("./protocol.js").TurnStatus} TurnStatus */

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

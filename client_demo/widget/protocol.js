// @ts-check
/* The server's REST bodies and WebSocket frames as the widget reads them (docs/protocol.md),
 * as JSDoc types for the type checker. Nothing here runs: the other modules refer to these
 * types with import("./protocol.js"), which browsers never load.
 */

/** @typedef {"done" | "cancelled" | "failed"} TurnStatus */

/**
 * @typedef {object} Session  who is logged in on this tab, and their tokens (kept in sessionStorage)
 * @property {string} token  the access token
 * @property {string} refreshToken  exchanged for new tokens; used up by each refresh
 * @property {number} expiresAt  epoch ms (this browser's clock) when the access token runs out
 * @property {string} sessionId
 * @property {number} userId
 * @property {string} email
 */

// ------------------------------------------------------------------------------- REST bodies

/**
 * @typedef {object} AuthBody  POST /api/auth/signup, /api/auth/login and /api/auth/refresh
 * @property {number} id
 * @property {string} email
 * @property {string} token  the access token
 * @property {string} refresh_token
 * @property {number} expires_in  seconds the access token is valid for
 * @property {string} session_id
 */

/**
 * @typedef {object} DeviceSession  one of the user's sessions (GET /api/auth/sessions)
 * @property {string} id
 * @property {string} device
 * @property {string} created_at
 * @property {string} last_used_at
 * @property {boolean} current  the session of the token that asked
 */

/** @typedef {"low" | "normal" | "high"} Priority */

/**
 * @typedef {object} Task
 * @property {number} id
 * @property {string} title
 * @property {string | null} description
 * @property {boolean} completed
 * @property {string} created_at
 * @property {string} updated_at
 * @property {Priority} [priority]
 * @property {string[]} [tags]  normalised (lower case), sorted
 * @property {string | null} [due_at]
 * @property {string | null} [remind_at]  the pending reminder; null once it fired or was dismissed
 * @property {string | null} [recurrence]  an RRULE: the task repeats
 */

/**
 * @typedef {object} User  GET and PATCH /api/auth/me
 * @property {string | number} id
 * @property {string} email
 * @property {string} created_at
 * @property {string} timezone  an IANA name; "UTC" until set
 */

/**
 * @typedef {object} Conversation
 * @property {number} id
 * @property {string} title
 * @property {string} created_at
 * @property {string} updated_at
 */

/**
 * @typedef {object} ToolRecord  a tool call kept in the history (a message of role "tool")
 * @property {string} id
 * @property {string} name
 * @property {Record<string, unknown>} arguments
 * @property {unknown} [result]
 */

/**
 * @typedef {object} Message
 * @property {number} id
 * @property {number} conversation_id
 * @property {"user" | "assistant" | "tool"} role
 * @property {string} content
 * @property {TurnStatus | null} [status]
 * @property {string | null} [turn_id]
 * @property {string | null} [client_msg_id]
 * @property {ToolRecord | null} [tool_call]
 * @property {string} created_at
 */

/**
 * @template T
 * @typedef {object} Page  a list endpoint's answer
 * @property {T[]} data
 * @property {number} [count]  lists of tasks and conversations: how many there are in all
 * @property {boolean} [has_more]  history pages: more messages beyond this page
 */

// ------------------------------------------------------------------------------- server frames

/**
 * @typedef {object} HelloFrame
 * @property {"hello"} type
 * @property {number} user_id
 * @property {number} last_seq
 * @property {number} expires_at  unix seconds when the socket's token runs out (unless `auth.refresh` extends it)
 */

/**
 * @typedef {object} PongFrame
 * @property {"pong"} type
 */

/**
 * @typedef {object} AuthRefreshedFrame  the socket took the token of an `auth.refresh`
 * @property {"auth.refreshed"} type
 * @property {number} expires_at  unix seconds
 */

/**
 * @typedef {object} AckFrame  our message is committed; `seq` is that of its `message` event
 * @property {"ack"} type
 * @property {string} client_msg_id
 * @property {number} conversation_id
 * @property {number} message_id
 * @property {string} turn_id
 * @property {number} seq
 */

/**
 * @typedef {object} MessageFrame
 * @property {"message"} type
 * @property {number} conversation_id
 * @property {Message} message
 * @property {number} seq
 */

/**
 * @typedef {object} TurnStartFrame
 * @property {"turn.start"} type
 * @property {string} turn_id
 * @property {number} conversation_id
 * @property {number} seq
 */

/**
 * @typedef {object} DeltaFrame  ephemeral: no seq; `offset` counts code points before `text`
 * @property {"delta"} type
 * @property {string} turn_id
 * @property {number} conversation_id
 * @property {number} offset
 * @property {string} text
 */

/**
 * @typedef {object} ToolCallFrame
 * @property {"tool.call"} type
 * @property {string} turn_id
 * @property {number} conversation_id
 * @property {string} call_id
 * @property {string} name
 * @property {Record<string, unknown>} arguments
 * @property {number} seq
 */

/**
 * @typedef {object} ToolResultFrame
 * @property {"tool.result"} type
 * @property {string} turn_id
 * @property {number} conversation_id
 * @property {string} call_id
 * @property {unknown} result
 * @property {number} seq
 */

/**
 * @typedef {object} TurnEndFrame
 * @property {"turn.end"} type
 * @property {string} turn_id
 * @property {number} conversation_id
 * @property {TurnStatus} status
 * @property {number | null} message_id  null only when the conversation was deleted during the turn
 * @property {string} [reason]
 * @property {number} seq
 */

/**
 * @typedef {object} TaskFrame
 * @property {"task.created" | "task.updated" | "task.deleted"} type
 * @property {Task} task
 * @property {number} seq
 */

/**
 * @typedef {object} ReminderFrame  a task's reminder fell due (sent once, to every socket)
 * @property {"reminder"} type
 * @property {Task} task  as it is after firing (its remind_at null again)
 * @property {string} remind_at  when it was due
 * @property {number} seq
 */

/**
 * @typedef {object} ReminderDismissedFrame  some device dismissed the task's reminder
 * @property {"reminder.dismissed"} type
 * @property {Task} task
 * @property {number} seq
 */

/**
 * @typedef {object} ConversationDeletedFrame
 * @property {"conversation.deleted"} type
 * @property {number} conversation_id
 * @property {number} seq
 */

/**
 * @typedef {object} ErrorFrame
 * @property {"error"} type
 * @property {string} code
 * @property {string} [detail]
 * @property {string | null} [ref]  the client_msg_id of a refused `chat`
 * @property {number} [retry_after]  seconds to wait before retrying (`rate_limited`, `overloaded`)
 */

/**
 * @typedef {object} ResyncFrame
 * @property {"resync_required"} type
 * @property {number} last_seq
 * @property {string} [reason]
 */

/**
 * @typedef {HelloFrame | PongFrame | AuthRefreshedFrame | AckFrame | MessageFrame | TurnStartFrame | DeltaFrame
 *   | ToolCallFrame | ToolResultFrame | TurnEndFrame | TaskFrame | ReminderFrame | ReminderDismissedFrame
 *   | ConversationDeletedFrame | ErrorFrame | ResyncFrame} ServerFrame
 */

// ------------------------------------------------------------------------------- client frames

/**
 * @typedef {{ type: "auth", token: string, after_seq?: number }
 *   | { type: "chat", conversation_id: number | null, message: string, client_msg_id: string }
 *   | { type: "cancel", turn_id: string }
 *   | { type: "ping" }
 *   | { type: "auth.refresh", token: string }
 *   | { type: "reminder.snooze", task_id: number, minutes: number }
 *   | { type: "reminder.dismiss", task_id: number }} ClientFrame
 */

export {};

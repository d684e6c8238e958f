// Shared by the widget's state tests: tasks, task events and messages as the server sends them.

export const task = (id, title, completed = false) => ({
  id,
  title,
  description: null,
  completed,
  created_at: "2030-01-01T10:00:00",
  updated_at: "2030-01-01T10:00:00",
});
export const taskEvent = (type, seq, t) => ({ type, task: t, seq });
export const message = (fields) => ({ conversation_id: 3, created_at: "2030-01-01T10:00:00", ...fields });

/** "Now" for the due-time tests, and a task with every field the filters look at. */
export const NOW = new Date("2026-12-01T11:00:00Z");
export const rich = (id, fields) => ({
  ...task(id, `task ${id}`),
  priority: "normal",
  tags: [],
  due_at: null,
  ...fields,
});

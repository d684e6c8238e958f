"""What the rules agent says: one friendly sentence per outcome, streamed a few words at a time."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from server.assistant.providers.rules.intents import Say, Topic
from server.assistant.providers.rules.outcomes import Changed, Failed, Listed, Outcome, Unchanged, Unresolved
from server.assistant.providers.rules.refs import TaskView

WORDS_PER_CHUNK = 3
LIST_LIMIT = 50
"""A listing longer than this is cut, with a count of the rest: a chat bubble is not a spreadsheet."""

HELP = (
    "I keep your to-do list. You can say things like:\n"
    '- "Add a task to buy groceries", "remind me to call mom"\n'
    '- "What\'s pending?", "What have I completed?", "Show me all my tasks"\n'
    '- "Mark task 3 as complete", "check off groceries", "I paid the bills"\n'
    '- "Reopen task 3", "mark it as not done"\n'
    '- "Delete the meeting task", "drop #4"\n'
    '- "Rename task 1 to Call mom tonight", "update the description of task 2 to bring passport"\n'
    'Name a task by its number ("task 3", "#3"), by words from its title, or say "it" for the one we just '
    "talked about."
)
_TIP = 'Say "show my tasks" to see their numbers.'

_SAID: dict[Topic, str] = {
    "help": HELP,
    "greeting": 'Hi! I can keep track of your tasks. Try "add buy milk" or "what\'s pending?".',
    "thanks": "You're welcome!",
    "bye": "Bye! Your tasks will be here when you come back.",
    "how_are_you": "All good, thanks! Ready when you are: what should we do with your tasks?",
    "identity": "I'm your task assistant: I add, list, complete, update and delete your tasks.",
    "ack": "Great! Anything else?",
    "never_mind": "OK, I left your tasks as they are.",
    "unknown": 'Sorry, I didn\'t catch that. I can add, list, complete, update and delete tasks; say "help" for '
    "examples.",
    "ask_add": 'What should I add? For example: "add buy milk".',
    "ask_update": 'What should I change? For example: "rename task 2 to Book flights" or "update the description '
    'of task 2 to bring passport".',
    "bulk": "I can only do that one task at a time: tell me which one, by number or by name.",
    "cant_undo": "I can only undo marking tasks done, when that was the last change. Renames and deletions stay; "
    "you can add a deleted task again.",
    "too_long": "That's too long for me: titles can be up to 200 characters and descriptions up to 1000.",
}

_VERBS = {"complete": "mark as done", "reopen": "reopen", "delete": "delete", "update": "change"}
_VERBS_IT = {"complete": "mark it as done", "reopen": "reopen it", "delete": "delete it", "update": "change it"}


def compose(outcomes: tuple[Outcome, ...]) -> str:
    return "\n".join(_render(o) for o in outcomes) or _SAID["unknown"]


def chunks(text: str, size: int = WORDS_PER_CHUNK) -> Iterator[str]:
    """`text` a few words at a time, whitespace kept, so the pieces join back to exactly `text`."""
    pieces = re.findall(r"\s*\S+\s*", text)
    for start in range(0, len(pieces), size):
        yield "".join(pieces[start : start + size])


def _render(outcome: Outcome) -> str:
    render: Callable[[Any], str] = _RENDERERS[type(outcome)]
    return render(outcome)


def _said(say: Say) -> str:
    if say.topic == "ask_action" and say.task_id is not None:
        n = say.task_id
        return f'What should I do with task {n}? For example "complete task {n}" or "delete task {n}".'
    return _SAID.get(say.topic, _SAID["unknown"])


def _changed(changed: Changed) -> str:
    title, task_id = changed.result["title"], changed.result["task_id"]
    if changed.tool == "add_task":
        return f'Added "{title}" to your list (task {task_id}).'
    if changed.tool == "complete_task":
        return f'Nice work! Marked "{title}" (task {task_id}) as done.'
    if changed.tool == "delete_task":
        return f'Deleted "{title}" (task {task_id}).'
    if changed.fields == ("completed",):
        return f'Reopened "{title}" (task {task_id}): it\'s pending again.'
    if changed.fields == ("description",):
        return f'Updated the description of "{title}" (task {task_id}).'
    if "description" in changed.fields:
        return f'Updated task {task_id}: it\'s now "{title}", with the new description.'
    return f'Renamed task {task_id} to "{title}".'


def _listed(listed: Listed) -> str:
    if not listed.tasks:
        return {
            "all": 'You have no tasks yet. Try "add buy milk".',
            "pending": "Nothing pending: you're all caught up!",
            "completed": "You haven't completed any tasks yet.",
        }[listed.status]
    count = len(listed.tasks)
    noun = "task" if count == 1 else "tasks"
    header = {
        "all": f"You have {count} {noun}:",
        "pending": f"You have {count} pending {noun}:",
        "completed": f"You've completed {count} {noun}:",
    }[listed.status]
    lines = [_line(t, show_done=listed.status == "all") for t in listed.tasks[:LIST_LIMIT]]
    if count > LIST_LIMIT:
        lines.append(f"...and {count - LIST_LIMIT} more.")
    return "\n".join([header, *lines])


def _line(task: TaskView, *, show_done: bool) -> str:
    line = f"- #{task.id} {task.title}"
    if task.description:
        line += f" ({task.description})"
    return line + (" [done]" if show_done and task.completed else "")


def _failed(failed: Failed) -> str:
    if failed.error == "not_found" and failed.task_id is not None:
        return f"I couldn't find task {failed.task_id}. {_TIP}"
    if failed.error == "not_found":
        return f"I couldn't find that task. {_TIP}"
    if failed.error == "unavailable":
        return "Sorry, I can't do that here."
    if failed.error == "invalid_arguments":
        return f"That didn't work: {failed.message or 'something was missing'}."
    if failed.error == "rate_limited":
        # "Too many task changes, retry in 42 s": the budget is the user's, so is the wait.
        return f"I can't change tasks that fast. {failed.message or 'Try again in a minute'}, then ask me again."
    return "Sorry, something went wrong with that; please try again."


def _unresolved(unresolved: Unresolved) -> str:
    verb = _VERBS[unresolved.act.action]
    if unresolved.reason == "unclear":
        return f'Which task should I {verb}? Tell me its number, like "task 3". {_TIP}'
    if unresolved.reason == "none":
        return f'I couldn\'t find a task matching "{unresolved.query}". {_TIP}'
    options = "\n".join(_line(t, show_done=True) for t in unresolved.candidates)
    if unresolved.reason == "several":
        return f'Several tasks match "{unresolved.query}":\n{options}\nWhich one should I {verb}? Tell me its number.'
    if len(unresolved.candidates) == 1:
        task = unresolved.candidates[0]
        return (
            f'I couldn\'t find a task matching "{unresolved.query}". Did you mean #{task.id} "{task.title}"? '
            f'Say "yes" to {_VERBS_IT[unresolved.act.action]}.'
        )
    return f'I couldn\'t find a task matching "{unresolved.query}". Did you mean one of these?\n{options}'


def _unchanged(unchanged: Unchanged) -> str:
    task = unchanged.task
    if task.completed:
        return f'"{task.title}" (task {task.id}) is already done.'
    return f'"{task.title}" (task {task.id}) isn\'t marked done, so there is nothing to reopen.'


_RENDERERS: dict[type, Callable[[Any], str]] = {
    Say: _said,
    Changed: _changed,
    Listed: _listed,
    Failed: _failed,
    Unresolved: _unresolved,
    Unchanged: _unchanged,
}

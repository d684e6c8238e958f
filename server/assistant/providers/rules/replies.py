"""What the rules agent says: one friendly sentence per outcome, streamed a few words at a time."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from server.assistant.providers.base import TurnContext
from server.assistant.providers.rules.intents import ListTasks, Say, Topic
from server.assistant.providers.rules.outcomes import (
    AskWhen,
    Changed,
    Failed,
    Listed,
    NeedsDue,
    Outcome,
    Unchanged,
    Unresolved,
)
from server.assistant.providers.rules.refs import TaskView
from server.assistant.providers.rules.when import say

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
    '- "Call the dentist tomorrow at 9 #health, high priority", "water the plants every Monday"\n'
    '- "Remind me to pay rent on the 1st", "remind me 30 minutes before", "snooze it for 10 minutes"\n'
    '- "What\'s due this week?", "anything overdue?", "tasks tagged work", "find tasks about the report"\n'
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
    "bad_time": 'I couldn\'t tell when that is, so I changed nothing. Try "tomorrow at 5pm", "next Friday" or '
    '"on the 3rd".',
    "too_long": "That's too long for me: titles can be up to 200 characters and descriptions up to 1000.",
}

_VERBS = {"complete": "mark as done", "reopen": "reopen", "delete": "delete", "update": "change"}
_VERBS_IT = {"complete": "mark it as done", "reopen": "reopen it", "delete": "delete it", "update": "change it"}


def compose(outcomes: tuple[Outcome, ...], context: TurnContext) -> str:
    """The reply: one sentence (or listing) per outcome; times in the user's zone."""
    return "\n".join(_render(o, context) for o in outcomes) or _SAID["unknown"]


def chunks(text: str, size: int = WORDS_PER_CHUNK) -> Iterator[str]:
    """`text` a few words at a time, whitespace kept, so the pieces join back to exactly `text`."""
    pieces = re.findall(r"\s*\S+\s*", text)
    for start in range(0, len(pieces), size):
        yield "".join(pieces[start : start + size])


def _render(outcome: Outcome, context: TurnContext) -> str:
    if isinstance(outcome, Changed):
        return _changed(outcome, context)
    if isinstance(outcome, Listed):
        return _listed(outcome, context)
    if isinstance(outcome, AskWhen):
        return _ask_when(outcome, context)
    render: Callable[[Any], str] = _RENDERERS[type(outcome)]
    return render(outcome)


_DAY_NAMES = {"MO": "Monday", "TU": "Tuesday", "WE": "Wednesday", "TH": "Thursday", "FR": "Friday"}
_DAY_NAMES |= {"SA": "Saturday", "SU": "Sunday"}
_UNIT_NAMES = {"DAILY": "day", "WEEKLY": "week", "MONTHLY": "month", "YEARLY": "year"}


def repeats(rule: str) -> str:
    """An RRULE in words: "every Monday", "every 2 weeks", "on day 1 of every month"."""
    parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
    unit, interval = _UNIT_NAMES.get(parts.get("FREQ", ""), "time"), int(parts.get("INTERVAL", "1"))
    every = f"every {interval} {unit}s" if interval > 1 else f"every {unit}"
    if days := parts.get("BYDAY"):
        if days == "MO,TU,WE,TH,FR" and interval == 1:
            return "every weekday"
        names = [_DAY_NAMES.get(d, d) for d in days.split(",")]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"every {listed}" if interval == 1 else f"{every} on {listed}"
    if (day := parts.get("BYMONTHDAY")) is not None:
        return f"on the last day of {every}" if day == "-1" else f"on day {day} of {every}"
    return every


def _when(value: Any, context: TurnContext) -> str:
    try:
        return say(datetime.fromisoformat(str(value)), context)
    except ValueError:
        return str(value)


def _schedule(arguments: dict[str, Any], context: TurnContext) -> list[str]:
    """What the call set besides the title, in words: "due Fri 4 Dec, 17:00", "high priority", "#work"."""
    said = []
    if arguments.get("due_at"):
        said.append(f"due {_when(arguments['due_at'], context)}")
    elif "due_at" in arguments:
        said.append("no due time")
    if arguments.get("recurrence"):
        said.append(f"repeating {repeats(arguments['recurrence'])}")
    elif "recurrence" in arguments:
        said.append("not repeating")
    if arguments.get("remind_at"):
        said.append(f"with a reminder {_when(arguments['remind_at'], context)}")
    if arguments.get("priority"):
        said.append(f"{arguments['priority']} priority")
    tags = arguments.get("tags") or arguments.get("add_tags")
    if tags:
        said.append("tagged " + " ".join(f"#{t}" for t in tags))
    if arguments.get("remove_tags"):
        said.append("without " + " ".join(f"#{t}" for t in arguments["remove_tags"]))
    return said


def _said(say: Say) -> str:
    if say.topic == "ask_action" and say.task_id is not None:
        n = say.task_id
        return f'What should I do with task {n}? For example "complete task {n}" or "delete task {n}".'
    return _SAID.get(say.topic, _SAID["unknown"])


def _changed(changed: Changed, context: TurnContext) -> str:
    title, task_id = changed.result["title"], changed.result["task_id"]
    schedule = _schedule(changed.arguments, context)
    if changed.tool == "add_task":
        if schedule:
            return f'Added "{title}" to your list (task {task_id}): {", ".join(schedule)}.'
        return f'Added "{title}" to your list (task {task_id}).'
    if changed.tool == "update_task" and "snooze_minutes" in changed.arguments:
        minutes = changed.arguments["snooze_minutes"]
        return f'OK, I\'ll remind you about "{title}" (task {task_id}) again in {minutes} minutes.'
    if changed.tool == "update_task" and changed.arguments.get("dismiss_reminder"):
        return f'OK, no more reminder for "{title}" (task {task_id}).'
    if changed.tool == "update_task" and schedule and not changed.fields:
        return f'Updated "{title}" (task {task_id}): {", ".join(schedule)}.'
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


def _listed(listed: Listed, context: TurnContext) -> str:
    if listed.query is not None:
        return _filtered(listed, listed.query, context)
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
    return "\n".join([header, *_lines(listed, context)])


def _lines(listed: Listed, context: TurnContext) -> list[str]:
    lines = [_line(t, show_done=listed.status == "all", context=context) for t in listed.tasks[:LIST_LIMIT]]
    if len(listed.tasks) > LIST_LIMIT:
        lines.append(f"...and {len(listed.tasks) - LIST_LIMIT} more.")
    return lines


def _filtered(listed: Listed, query: ListTasks, context: TurnContext) -> str:
    """ "2 pending high priority tasks tagged #work, due this week:" and the tasks, soonest first if asked."""
    count = len(listed.tasks)
    words = [{"all": "", "pending": "pending", "completed": "completed"}[query.status]]
    if query.overdue:
        words = ["overdue"]
    if query.priority:
        words.append(f"{query.priority} priority")
    words.append("task" if count == 1 else "tasks")
    if query.tag:
        words.append(f"tagged #{query.tag}")
    if query.query:
        words.append(f'matching "{query.query}"')
    if query.window:
        words.append(f"due {query.window}")
    what = " ".join(w for w in words if w)
    if not listed.tasks:
        return f"You have no {what}."
    order = {"due": ", soonest first", "priority": ", most important first", "title": ", by title"}.get(
        query.sort or "", ""
    )
    return "\n".join([f"You have {count} {what}{order}:", *_lines(listed, context)])


def _line(task: TaskView, *, show_done: bool, context: TurnContext | None = None) -> str:
    line = f"- #{task.id} {task.title}"
    if task.description:
        line += f" ({task.description})"
    extras = []
    if task.due_at and context is not None:
        extras.append(f"due {_when(task.due_at, context)}")
    if task.recurrence:
        extras.append(repeats(task.recurrence))
    if task.priority != "normal":
        extras.append(f"{task.priority} priority")
    extras.extend(f"#{t}" for t in task.tags)
    if extras:
        line += f" [{', '.join(extras)}]"
    return line + (" [done]" if show_done and task.completed else "")


def _ask_when(asked: AskWhen, context: TurnContext) -> str:
    first, second = (say(o, context) for o in asked.ambiguous.options[:2])
    same_day = first.split(",")[0] == second.split(",")[0]
    hint = '"am" or "pm" (or a time like 19:00)' if same_day else '"today" or "next week"'
    return f'When do you mean by "{asked.ambiguous.phrase}": {first} or {second}? Say {hint}; nothing is changed yet.'


def _needs_due(needs: NeedsDue) -> str:
    which = f"Task {needs.task_id}" if needs.task_id is not None else "That task"
    return (
        f"{which} has no due time, so I can't remind you before it. Say when it is due "
        '("move it to tomorrow at 5pm"), or when to remind you ("remind me about it tomorrow at 9").'
    )


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
    NeedsDue: _needs_due,
    Failed: _failed,
    Unresolved: _unresolved,
    Unchanged: _unchanged,
}

"""Deciding the next step: which tools to call now, or, once every result is in, what happened.

The provider keeps no memory between steps, so each step replays the whole turn: it parses
the user's message again and walks its intents, taking the result of each tool call it would
make from the calls this turn already made (they come back in `messages`). The first call
with no result yet, and any other call that does not depend on it, is the step's request;
when nothing is left to call, the outcomes are what the reply is made of.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Literal

from server.assistant.providers.base import TurnContext
from server.assistant.providers.rules.intents import Act, Add, Answer, Intent, ListTasks, Say, Undo
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
from server.assistant.providers.rules.parser import parse
from server.assistant.providers.rules.refs import (
    ById,
    ByWords,
    Everything,
    Pronoun,
    Ref,
    TaskView,
    Unnamed,
    find,
    in_range,
    parse_ref,
    task_views,
    words,
)
from server.assistant.providers.rules.schedule import Missing, needs_due, tool_arguments
from server.assistant.providers.rules.transcript import Mention, Record, Transcript, mentioned
from server.assistant.providers.rules.when import Ambiguous, iso, restate, window

ACTION_TOOLS = {"complete": "complete_task", "reopen": "update_task", "delete": "delete_task", "update": "update_task"}
CHANGING_TOOLS = frozenset({"add_task", "complete_task", "delete_task", "update_task"})
ANSWER_WORDS = 5
"""A longer message after "which one?" is a new subject, not title words picking a task."""


@dataclass(frozen=True, slots=True)
class Step:
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    outcomes: tuple[Outcome, ...] = ()


def plan(transcript: Transcript, tools: frozenset[str], context: TurnContext) -> Step:
    if not transcript.turns:
        return Step(outcomes=(Say("greeting"),))
    index = len(transcript.turns) - 1
    turn = transcript.turns[index]
    intents = _intents(transcript, index)
    if len(intents) == 1 and (isinstance(intents[0], Answer) or intents[0] == Say("unknown") or _stated(intents[0])):
        said = intents[0]
        asked = _open_question(transcript, tools, context)
        if isinstance(asked, AskWhen):
            intents = _answer_when(said, turn.text, transcript.turns[index - 1].text, asked)
        else:
            intents = _answer(said, turn.text, asked)
        if _stated(said) and intents == [Say("unknown")]:
            intents = [said]  # it answers nothing: the task it states
    return walk(intents, turn.records, transcript.mention_before(index), tools, context)


def _stated(intent: Intent) -> bool:
    """A task said without a command word: it may also be the answer to the question just asked."""
    return isinstance(intent, Add) and intent.stated


def _open_question(transcript: Transcript, tools: frozenset[str], context: TurnContext) -> Unresolved | AskWhen | None:
    """The question the previous turn ended with, if it did: "which one?", or "07:00 or 19:00?"."""
    if len(transcript.turns) < 2:
        return None
    index = len(transcript.turns) - 2
    previous = transcript.turns[index]
    step = walk(_intents(transcript, index), previous.records, transcript.mention_before(index), tools, context)
    if any(r.call.name in CHANGING_TOOLS for r in previous.records):
        # Said again, the message would repeat what it did: only a "which one?" can be answered then.
        return next((o for o in step.outcomes if isinstance(o, Unresolved) and o.asks), None)
    return next((o for o in step.outcomes if (isinstance(o, Unresolved) and o.asks) or isinstance(o, AskWhen)), None)


def _answer_when(intent: Intent, text: str, asking: str, asked: AskWhen) -> list[Intent]:
    """ "pm", "19:00", "next Friday" after "07:00 or 19:00?": the asking message again, with the answer in."""
    restated = restate(asking, asked.ambiguous.phrase, text)
    return [intent] if restated is None else parse(restated)


def _intents(transcript: Transcript, index: int) -> list[Intent]:
    """The intents of `turns[index]`'s message, with "undo" worked out from the turns before it."""
    intents: list[Intent] = []
    for intent in parse(transcript.turns[index].text):
        intents.extend(_undo(transcript, index) if isinstance(intent, Undo) else [intent])
    return intents


def _undo(transcript: Transcript, index: int) -> list[Intent]:
    """What "undo" takes back: the completions of the latest turn that changed anything, reopened.

    Only when completing is all that turn did: a deleted task is gone and an old title is not
    kept, so a rename, a deletion or a turn that mixed them with completions gets a reply instead.
    """
    for turn in reversed(transcript.turns[:index]):
        changes = [r for r in turn.records if r.call.name in CHANGING_TOOLS and _succeeded(r.result)]
        if not changes:
            continue
        done = [r.result["task_id"] for r in changes if r.call.name == "complete_task"]
        if len(done) == len(changes) and all(isinstance(task_id, int) for task_id in done):
            return [Act("reopen", ById(task_id)) for task_id in done]
        break
    return [Say("cant_undo")]


def _succeeded(result: Any) -> bool:
    return isinstance(result, dict) and "error" not in result


def _answer(intent: Intent, text: str, question: Unresolved | None) -> list[Intent]:
    """Turn "3", "the second one", "yes" or a few title words into the action the question was about."""
    if question is None:
        if isinstance(intent, Answer) and intent.kind == "id":
            return [Say("ask_action", task_id=intent.value)]
        return [intent]
    choice = _choice(intent, text, question)
    return [Say("unknown")] if choice is None else [replace(question.act, ref=choice)]


def _choice(intent: Intent, text: str, question: Unresolved) -> Ref | None:
    """The task an answer picks among the question's candidates (after "which task?", any task it names)."""
    candidates = question.candidates
    if isinstance(intent, Answer):
        if intent.kind == "id":
            return ById(intent.value)
        if intent.kind == "ordinal" and -len(candidates) <= intent.value < len(candidates):
            return ById(candidates[intent.value].id)
        if intent.kind == "yes" and len(candidates) == 1:
            return ById(candidates[0].id)
        return None
    ref = parse_ref(text) if len(text.split()) <= ANSWER_WORDS else None
    if not isinstance(ref, ByWords):
        return None
    if question.reason == "unclear":
        return ref  # there were no candidates: look the words up like any other reference
    fits = [t for t in candidates if ref.words <= words(t.title)]
    return ById(fits[0].id) if len(fits) == 1 else None


class _Queued:
    """The result of a call that is queued for this step, not made yet."""


QUEUED: Final = _Queued()


class _Blocked(Exception):
    """The next intent needs the result of a call that has not run yet."""


class _Diverged(Exception):
    """The turn's calls are not the ones this plan makes (another provider, or a changed parser)."""


class _Replay:
    """Hands out the results of calls already made this turn, and collects the ones still to make."""

    def __init__(
        self, records: tuple[Record, ...], mention: Mention, tools: frozenset[str], context: TurnContext
    ) -> None:
        self.context = context
        self.records = records
        self.cursor = 0
        self.mention = mention
        self.tools = tools
        self.catalog: dict[int, TaskView] | None = None
        """Every task, from this turn's `list_tasks`, kept current with this turn's changes."""
        self.pending: list[tuple[str, dict[str, Any]]] = []

    def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """The call's result, or QUEUED if it is still to be made."""
        if name not in self.tools:
            return {"error": "unavailable", "message": f"{name} is not available"}
        if not self.pending and self.cursor < len(self.records):
            record = self.records[self.cursor]
            if record.call.name != name or record.call.arguments != arguments:
                raise _Diverged
            self.cursor += 1
            self._learn(record)
            return record.result
        self.pending.append((name, arguments))
        return QUEUED

    def _learn(self, record: Record) -> None:
        self.mention = mentioned(record, self.mention)
        result, name = record.result, record.call.name
        if name == "list_tasks" and record.call.arguments == CATALOG:
            views = task_views(result)
            if views is not None:
                self.catalog = {t.id: t for t in views}
        if self.catalog is None or not isinstance(result, dict) or "error" in result:
            return
        task_id, title = result.get("task_id"), result.get("title")
        if not isinstance(task_id, int) or not isinstance(title, str):
            return
        if name == "delete_task":
            self.catalog.pop(task_id, None)
        elif name in {"add_task", "complete_task", "update_task"}:
            old = self.catalog.get(task_id)
            completed = name == "complete_task" or (old is not None and old.completed)
            if name == "update_task" and isinstance(record.call.arguments.get("completed"), bool):
                completed = record.call.arguments["completed"]
            due_at = record.call.arguments.get("due_at", old.due_at if old else None)
            self.catalog[task_id] = TaskView(
                task_id, title, completed, old.description if old else None, due_at if isinstance(due_at, str) else None
            )

    def tasks(self) -> list[TaskView] | Failed:
        """Every task, listing them first if this turn has not."""
        if self.catalog is None:
            result = self.call("list_tasks", dict(CATALOG))
            if result is QUEUED:
                raise _Blocked
            if self.catalog is None:
                return _failure("list_tasks", {}, result)
        return list(self.catalog.values())

    def it(self) -> Mention:
        """The task "it" means now; a queued call on a task counts, a queued add or listing must run first."""
        for name, arguments in reversed(self.pending):
            if isinstance(arguments.get("task_id"), int):
                return int(arguments["task_id"])
            if name in {"add_task", "list_tasks"}:
                raise _Blocked
        return self.mention


def walk(
    intents: list[Intent], records: tuple[Record, ...], mention: Mention, tools: frozenset[str], context: TurnContext
) -> Step:
    replay = _Replay(records, mention, tools, context)
    outcomes: list[Outcome] = []
    try:
        for intent in intents:
            outcome = _run(intent, replay)
            if outcome is not None:
                outcomes.append(outcome)
    except _Blocked:
        assert replay.pending, "only a queued call can block an intent"
    except _Diverged:
        return Step(outcomes=tuple(_summary(records)))
    if replay.pending:
        return Step(calls=tuple(replay.pending))
    if replay.cursor < len(records):
        return Step(outcomes=tuple(_summary(records)))
    return Step(outcomes=tuple(outcomes))


def _run(intent: Intent, replay: _Replay) -> Outcome | None:
    """The intent's outcome, or None while its call is queued."""
    if isinstance(intent, Say):
        return intent
    if isinstance(intent, Answer):
        return Say("unknown")  # a bare "yes" or "the second one" with no question before it
    if isinstance(intent, Undo):
        return Say("cant_undo")  # `_intents` works "undo" out; this is only a safety net
    if isinstance(intent, ListTasks):
        listed = _outcome("list_tasks", _listing(intent, replay.context), replay)
        return replace(listed, query=intent) if isinstance(listed, Listed) and intent.filtered else listed
    if isinstance(intent, Add):
        scheduled = tool_arguments(intent.details, replay.context)
        if not isinstance(scheduled, dict):
            return _unscheduled(scheduled, None)
        fields: dict[str, Any] = {"title": intent.title}
        if intent.description:
            fields["description"] = intent.description
        return _outcome("add_task", fields | scheduled, replay)
    target = _target(intent, replay)
    if not isinstance(target, int):
        return target
    arguments: dict[str, Any] = {"task_id": target}
    if intent.title:
        arguments["title"] = intent.title
    if intent.description:
        arguments["description"] = intent.description
    if intent.action == "reopen":
        arguments["completed"] = False
    if intent.details:
        changes = _scheduled(intent, target, replay)
        if not isinstance(changes, dict):
            return changes
        arguments |= changes
    return _outcome(ACTION_TOOLS[intent.action], arguments, replay)


def _scheduled(act: Act, task_id: int, replay: _Replay) -> dict[str, Any] | Outcome:
    """An update's priority, tags, times and rule as arguments; the task's due time is looked up when they need it."""
    due_at = None
    if needs_due(act.details):
        tasks = replay.tasks()
        if isinstance(tasks, Failed):
            return tasks
        task = next((t for t in tasks if t.id == task_id), None)
        due_at = datetime.fromisoformat(task.due_at) if task is not None and task.due_at else None
    scheduled = tool_arguments(act.details, replay.context, update=True, due_at=due_at)
    return scheduled if isinstance(scheduled, dict) else _unscheduled(scheduled, task_id)


CATALOG: Final[dict[str, Any]] = {"status": "all"}
"""The listing that shows every task: the one title words are looked up in."""


def _unscheduled(problem: Ambiguous | Missing, task_id: int | None) -> Outcome:
    if isinstance(problem, Ambiguous):
        return AskWhen(problem)
    if problem.what == "due":
        return NeedsDue(task_id)
    return Say("bad_time")


def _listing(query: ListTasks, context: TurnContext) -> dict[str, Any]:
    """A listing's arguments: the status, and only the filters the user asked for."""
    args: dict[str, Any] = {"status": query.status}
    if query.priority:
        args["priority"] = query.priority
    if query.tag:
        args["tag"] = query.tag
    if query.query:
        args["query"] = query.query
    if query.overdue:
        args["overdue"] = True
    if query.window:
        start, end = window(query.window, context)
        args["due_after"], args["due_before"] = iso(start), iso(end)
    if query.sort:
        args["sort"] = query.sort
    return args


def _target(act: Act, replay: _Replay) -> int | Outcome:
    """The id `act.ref` names, or the outcome that explains why there is none."""
    ref = act.ref
    if isinstance(ref, Everything):
        return Say("bulk")
    if isinstance(ref, ById):
        if in_range(ref.task_id):
            return ref.task_id
        return Failed(ACTION_TOOLS[act.action], "not_found", "", ref.task_id)
    if isinstance(ref, Unnamed):
        return Unresolved(act, "unclear")
    if isinstance(ref, Pronoun):
        it = replay.it()
        return it if isinstance(it, int) else Unresolved(act, "unclear")
    tasks = replay.tasks()
    if isinstance(tasks, Failed):
        return tasks
    match = find(ref, tasks, prefer=_PREFER.get(act.action))
    if match.kind != "one":
        return Unresolved(act, match.kind, ref.phrase, match.tasks)
    task = match.tasks[0]
    if (act.action == "complete" and task.completed) or (act.action == "reopen" and not task.completed):
        return Unchanged(task)
    return task.id


_PREFER: Final[dict[str, Literal["pending", "completed"]]] = {"complete": "pending", "reopen": "completed"}


def _outcome(name: str, arguments: dict[str, Any], replay: _Replay) -> Outcome | None:
    result = replay.call(name, arguments)
    return None if result is QUEUED else interpret(name, arguments, result)


def interpret(name: str, arguments: dict[str, Any], result: Any) -> Outcome:
    """A tool result, as something to tell the user."""
    if isinstance(result, dict) and "error" in result:
        return _failure(name, arguments, result)
    if name == "list_tasks":
        views = task_views(result)
        status = arguments.get("status", "all")
        if views is None or status not in {"all", "pending", "completed"}:
            return _failure(name, arguments, result)
        return Listed(status, tuple(views))
    if isinstance(result, dict) and isinstance(result.get("task_id"), int) and isinstance(result.get("title"), str):
        fields = tuple(k for k in ("title", "description", "completed") if k in arguments)
        return Changed(name, result, fields, arguments)
    return _failure(name, arguments, result)


def _failure(name: str, arguments: dict[str, Any], result: Any) -> Failed:
    error = result.get("error") if isinstance(result, dict) else None
    message = result.get("message") if isinstance(result, dict) else None
    task_id = arguments.get("task_id")
    return Failed(
        tool=name,
        error=str(error or "unexpected"),
        message=str(message or ""),
        task_id=task_id if isinstance(task_id, int) else None,
    )


def _summary(records: tuple[Record, ...]) -> list[Outcome]:
    """What the turn's calls did, told plainly: the fallback when the plan cannot be replayed."""
    return [interpret(r.call.name, r.call.arguments, r.result) for r in records]

"""The conversation as the rules agent reads it: turns, the tool calls each made, and the task last mentioned."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from server.assistant.providers.base import ChatMessage, ToolCallRequest

CALL_ID_PREFIX = "rules_"
_CALL_ID = re.compile(rf"{CALL_ID_PREFIX}(\d+)")

Mention = int | Literal["unclear"] | None
"""The task "it" means: an id, "unclear" after a listing of several tasks, or None before any task came up."""


@dataclass(frozen=True, slots=True)
class Record:
    """One tool call and its result (None if the result never arrived)."""

    call: ToolCallRequest
    result: Any


@dataclass(frozen=True, slots=True)
class Turn:
    text: str
    """The user's message that opened the turn ("" for a window that starts mid-turn)."""
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    turns: tuple[Turn, ...]
    """Oldest first; the last one is the turn being answered."""
    next_call_number: int
    """Call ids continue after the highest one in view, so they stay unique within what any step sees."""

    def mention_before(self, index: int) -> Mention:
        """The task last mentioned in the turns before `turns[index]`."""
        return mention_after((r for turn in self.turns[:index] for r in turn.records), None)


def read(messages: Sequence[ChatMessage]) -> Transcript:
    """Group `messages` into turns, pairing every tool call with its result by call id."""
    turns: list[tuple[str, list[ToolCallRequest], dict[str, Any]]] = []
    highest = 0
    for message in messages:
        if message.role == "user":
            turns.append((message.content, [], {}))
        elif message.role == "assistant" and message.tool_calls:
            if not turns:
                turns.append(("", [], {}))
            turns[-1][1].extend(message.tool_calls)
            for call in message.tool_calls:
                if m := _CALL_ID.fullmatch(call.id):
                    highest = max(highest, int(m[1]))
        elif message.role == "tool" and turns and message.tool_call_id is not None:
            turns[-1][2][message.tool_call_id] = _decode(message.content)
    return Transcript(
        turns=tuple(
            Turn(text, tuple(Record(call, results.get(call.id)) for call in calls)) for text, calls, results in turns
        ),
        next_call_number=highest + 1,
    )


def _decode(content: str) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def mention_after(records: Iterable[Record], mention: Mention) -> Mention:
    for record in records:
        mention = mentioned(record, mention)
    return mention


def mentioned(record: Record, before: Mention) -> Mention:
    """What "it" means once `record` has happened.

    A call on a task id names that task, even if it failed ("delete it" then fails the same
    way, which is honest). A listing names its only task, and makes "it" unclear when it shows several.
    """
    task_id = record.call.arguments.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        return task_id
    result = record.result
    if isinstance(result, dict) and isinstance(result.get("task_id"), int) and "error" not in result:
        return int(result["task_id"])
    if record.call.name == "list_tasks" and isinstance(result, list) and result:
        only = result[0]
        if len(result) == 1 and isinstance(only, dict) and isinstance(only.get("id"), int):
            return int(only["id"])
        return "unclear"
    return before

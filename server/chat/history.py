"""Persisted messages -> the provider's view of the conversation (tool calls regrouped under their request)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from server.assistant.providers.base import ChatMessage, ToolCallRequest


class StoredMessage(Protocol):
    """What history needs of a persisted message: a `HistoryRow`, a result row or an ORM object fit."""

    @property
    def role(self) -> str: ...

    @property
    def content(self) -> str: ...

    @property
    def status(self) -> str | None: ...

    @property
    def tool_call(self) -> dict[str, Any] | None: ...


def to_chat_messages(rows: Sequence[StoredMessage]) -> list[ChatMessage]:
    """Rebuild the turns: user message, then (assistant tool request, tool results)*, then the reply.

    Tool rows are stored one per call; consecutive ones become one assistant message asking
    for all of them followed by their results, which is what Chat Completions expects.
    """
    result: list[ChatMessage] = []
    calls: list[ToolCallRequest] = []
    outputs: list[ChatMessage] = []

    def close_group() -> None:
        if calls:
            result.append(ChatMessage(role="assistant", content="", tool_calls=tuple(calls)))
            result.extend(outputs)
            calls.clear()
            outputs.clear()

    for row in rows:
        if row.role == "tool" and row.tool_call:
            if not result:
                continue  # the window starts mid-turn: results without their request mean nothing
            record = row.tool_call
            calls.append(ToolCallRequest(id=str(record["id"]), name=str(record["name"]), arguments=record["arguments"]))
            outputs.append(
                ChatMessage(
                    role="tool",
                    content=orjson.dumps(record.get("result")).decode(),
                    tool_call_id=str(record["id"]),
                    name=str(record["name"]),
                )
            )
            continue
        close_group()
        if row.role == "user":
            result.append(ChatMessage(role="user", content=row.content))
        elif row.role == "assistant" and (row.content or row.status == "done"):
            result.append(ChatMessage(role="assistant", content=row.content))
    close_group()
    return result

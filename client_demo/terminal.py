"""Rendering a session on a terminal: the streaming reply, one line per tool call or task event."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Literal, TextIO
from zoneinfo import ZoneInfo

from client_demo.due import reminder_line
from client_demo.turns import ToolCallRecord, Turn


@dataclass(frozen=True, slots=True)
class Symbols:
    ok: str
    failed: str
    arrow: str
    bullet: str
    ellipsis: str
    alarm: str


UNICODE = Symbols(ok="✓", failed="✗", arrow="→", bullet="•", ellipsis="…", alarm="⏰")
ASCII = Symbols(ok="+", failed="x", arrow="->", bullet="*", ellipsis="...", alarm="(!)")

ERASE_LINE = "\r\x1b[K"
"""Back to the start of the line and clear it (ECMA-48 CR + EL)."""
TOOL_VERBS = {"created": "Added", "completed": "Completed", "deleted": "Deleted", "updated": "Updated"}
TASK_VERBS = {"task.created": "added", "task.updated": "updated", "task.deleted": "deleted"}


def symbols_for(stream: TextIO) -> Symbols:
    """Unicode when the stream can encode it (a UTF-8 terminal), plain ASCII otherwise."""
    sample = UNICODE.ok + UNICODE.failed + UNICODE.arrow + UNICODE.bullet + UNICODE.ellipsis + UNICODE.alarm
    try:
        sample.encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


def describe_result(name: str, result: Any, limit: int = 100) -> tuple[bool, str]:
    """(succeeded, one short line) for a tool result: `Added "Buy groceries" (task 7)`."""
    if isinstance(result, dict):
        if "error" in result:
            return False, str(result.get("message") or result["error"])
        verb = TOOL_VERBS.get(str(result.get("status")))
        if verb and "title" in result:
            return True, f'{verb} "{result["title"]}" (task {result.get("task_id")})'
    if isinstance(result, list) and name == "list_tasks":
        return True, f"{len(result)} task{'' if len(result) == 1 else 's'}"
    text = json.dumps(result, ensure_ascii=False)
    return True, text if len(text) <= limit else text[: limit - 3] + "..."


def describe_task(task: dict[str, Any]) -> str:
    mark = "x" if task.get("completed") else " "
    return f"[{mark}] {task.get('id')}. {task.get('title')}"


class Terminal:
    """Where text goes: `out` for the conversation, `notes` for status lines (stderr in one-shot mode)."""

    def __init__(self, out: TextIO | None = None, notes: TextIO | None = None) -> None:
        self.out: TextIO = out or sys.stdout
        self.notes: TextIO = notes or self.out
        self.symbols = symbols_for(self.out)
        self._open_line: TextIO | None = None
        """The stream whose last line is unfinished (a reply being streamed, a prompt)."""
        self._prompt: str | None = None
        """The prompt waiting for input: shown again below a line printed meanwhile."""

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
        self._open_line = self.out if text and not text.endswith("\n") else None

    def prompt(self, text: str) -> None:
        self.write(text)
        self._prompt = text

    def drop_prompt(self) -> str | None:
        """Stop showing the prompt again below new lines (quitting, or another prompt takes over)."""
        prompt, self._prompt = self._prompt, None
        return prompt

    def input_ended(self) -> None:
        """The user pressed Enter after a prompt (the terminal echoed the newline)."""
        self._open_line = self._prompt = None

    def end_line(self) -> None:
        if self._open_line is not None:
            self._open_line.write("\n")
            self._open_line.flush()
            self._open_line = None

    def line(self, text: str = "") -> None:
        self._print(self.out, text)

    def note(self, text: str) -> None:
        self._print(self.notes, text)

    def _print(self, stream: TextIO, text: str) -> None:
        prompt, self._prompt = self._prompt, None
        out = self.out
        if prompt is not None and self._open_line is not None and self._open_line is out and out.isatty():
            out.write(ERASE_LINE)  # the prompt is redrawn below the new line
            self._open_line = None
        self.end_line()
        stream.write(text + "\n")
        stream.flush()
        if prompt is not None:
            self.prompt(prompt)  # something happened while idle: the prompt is still waiting


class TerminalView:
    """A `SessionView`: the reply streams as deltas arrive; tools and task events get a line each."""

    def __init__(
        self,
        terminal: Terminal,
        *,
        reply_prefix: str = "assistant: ",
        stream_reply: bool = True,
        details: Literal["out", "notes", "off"] = "out",
    ) -> None:
        self.terminal = terminal
        self.reply_prefix = reply_prefix
        self.stream_reply = stream_reply
        self.details = details
        """Where tool and task lines go: with the conversation, with the status notes, or nowhere."""
        self.zone = ZoneInfo("UTC")
        """The account's time zone, for due times (the session sets it once the account is known)."""
        self._streaming: Turn | None = None

    @property
    def _sym(self) -> Symbols:
        return self.terminal.symbols

    def _detail(self, text: str) -> None:
        if self.details == "out":
            self.terminal.line(f"  {text}")
        elif self.details == "notes":
            self.terminal.note(f"  {text}")

    def connection_lost(self, reason: str) -> None:
        self._streaming = None
        suffix = f" ({reason})" if reason else ""
        self.terminal.note(f"connection lost{suffix}, reconnecting{self._sym.ellipsis}")

    def reconnected(self) -> None:
        self.terminal.note("reconnected")

    def reply_delta(self, turn: Turn, text: str) -> None:
        if not self.stream_reply:
            return
        if self._streaming is not turn:
            self.terminal.end_line()
            self._streaming = turn
            text = self.reply_prefix + text.lstrip("\n")
        self.terminal.write(text)

    def tool_finished(self, turn: Turn, call: ToolCallRecord) -> None:
        self._streaming = None
        ok, summary = describe_result(call.name, call.result)
        mark = self._sym.ok if ok else self._sym.failed
        self._detail(f"{mark} {call.name} {self._sym.arrow} {summary}")

    def task_event(self, frame: dict[str, Any], turn: Turn | None) -> None:
        if turn is not None and any(not call.finished for call in turn.tool_calls):
            return  # the tool's own line tells it
        task = frame.get("task") or {}
        verb = TASK_VERBS.get(str(frame.get("type")), "changed")
        if frame.get("type") == "task.updated" and task.get("completed"):
            verb = "completed"
        self._streaming = None
        self._detail(f'{self._sym.bullet} task {task.get("id")} {verb}: "{task.get("title")}"')

    def turn_ended(self, turn: Turn) -> None:
        self._streaming = None
        self.terminal.end_line()
        if turn.status == "cancelled":
            self.terminal.note("  (cancelled)")
        elif turn.status == "failed":
            self.terminal.note(f"  (failed: {turn.reason or 'the assistant could not answer'})")
        elif turn.status == "rejected":
            self.terminal.note(f"error: {turn.reason}")

    def server_error(self, code: str, detail: str) -> None:
        self.terminal.note(f"server error: {detail} ({code})")

    def reminder(self, frame: dict[str, Any]) -> None:
        """A reminder fell due: a line of its own, even in the middle of a streamed reply (which
        carries on below it, under its prefix again)."""
        self._streaming = None
        self.terminal.note(reminder_line(frame, self.zone, alarm=self._sym.alarm))

    def resync(self, reason: str) -> None:
        self.terminal.note(f"some events were missed ({reason}); /tasks and /history show the current state")

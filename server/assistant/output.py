"""What a model sends, made safe to store and to pass on: NUL (U+0000) becomes U+FFFD, the replacement character.

PostgreSQL's `text` cannot hold NUL. Client input that carries one is refused where it arrives
(`server.fields.NoNul`), but a model's reply cannot be refused: the user did nothing wrong, and
one such reply failed the whole batch it was saved in. So it is replaced, as a decoder replaces
what it cannot decode, by the agent (`server/assistant/agent.py`), the one place every
provider's events pass on their way into a turn.
"""

from __future__ import annotations

from typing import Any

from server.assistant.providers.base import ProviderEvent, TextDelta, ToolCallRequest

NUL = "\x00"
REPLACEMENT = "\ufffd"


def clean_text(text: str) -> str:
    """`text` with every NUL replaced."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def clean_value(value: Any) -> Any:
    """A JSON value (tool-call arguments) with every NUL replaced, in keys and strings at any depth."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): clean_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_value(item) for item in value]
    return value


def clean_event(event: ProviderEvent) -> ProviderEvent:
    """A provider event whose text, tool name, id and arguments hold no NUL."""
    if isinstance(event, TextDelta):
        return TextDelta(clean_text(event.text)) if NUL in event.text else event
    return ToolCallRequest(id=clean_text(event.id), name=clean_text(event.name), arguments=clean_value(event.arguments))

"""Constrained field types shared by every edge (REST, WebSocket, MCP, the assistant's tools).

What the storage cannot hold is refused where input arrives, as 422 / `invalid`, instead of
failing in the database driver (which reads like an outage):

- ids beyond the id columns' integer range, zero or negative (`DbId`), seqs and cursors
  beyond a signed 64-bit integer (`Seq`);
- NUL (U+0000) in text: PostgreSQL's `text` cannot store it (`NoNul`, a marker to add to any
  `Annotated[str, ...]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

ID_MAX = 2**31 - 1
"""The id columns are `Integer` (server/db/models.py): PostgreSQL's `integer` is 32-bit signed."""
SEQ_MAX = 2**63 - 1
"""Seqs are `BigInteger`: 64-bit signed on PostgreSQL and SQLite alike."""

DbId = Annotated[int, Field(ge=1, le=ID_MAX)]
"""A row id (user, task, conversation, message): ids start at 1."""
Seq = Annotated[int, Field(ge=0, le=SEQ_MAX)]
"""A position in a user's event log; 0 means "before the first event"."""
Offset = Annotated[int, Field(ge=0, le=ID_MAX)]
"""A paging offset: no user has more rows than ids exist."""
Cursor = Annotated[int, Field(ge=0, le=ID_MAX)]
"""A paging cursor naming a row id; 0 means "from the start"."""

NO_NUL_PATTERN = "^[^\\x00]*$"


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "must not contain NUL characters (U+0000)")
    return value


@dataclass(frozen=True, slots=True)
class _NoNul:
    """Refuses NUL with a clear message, and says so in the JSON schema (for clients and fuzzers)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(_refuse_nul, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", NO_NUL_PATTERN)  # a stricter pattern of the field's own already excludes NUL
        return json_schema


NoNul = _NoNul()
"""Add to any text field: `Annotated[str, StringConstraints(...), NoNul]`."""

SafeText = Annotated[str, NoNul]
"""Any text without NUL, of any length."""

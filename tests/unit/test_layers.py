"""Imports point down the stack: storage never reaches up, and the frame module is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
ABOVE_STORAGE = ("server.realtime", "server.ws", "server.chat", "server.api", "server.assistant", "server.reminders")


def imports_of(path: Path) -> set[str]:
    """Every `server...` module the file imports (`from server import x` counts as `server.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("server.")}


def reaches(name: str, layers: tuple[str, ...]) -> bool:
    return any(name == layer or name.startswith(f"{layer}.") for layer in layers)


@pytest.mark.parametrize("path", sorted((SERVER / "db").rglob("*.py")), ids=lambda p: str(p.relative_to(SERVER)))
def test_storage_imports_nothing_above_it(path: Path) -> None:
    assert sorted(name for name in imports_of(path) if reaches(name, ABOVE_STORAGE)) == []


@pytest.mark.parametrize("module", ["protocol.py", "frametext.py"])
def test_the_frame_modules_are_leaves(module: str) -> None:
    """Storage, the pub/sub core and the socket edge all build frames: the frame modules import none of them."""
    assert sorted(name for name in imports_of(SERVER / module) if reaches(name, (*ABOVE_STORAGE, "server.db"))) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from server.realtime import hub\nimport server.chat.turns\nfrom server import errors\n")
    assert imports_of(sample) == {"server.realtime.hub", "server.chat.turns", "server.errors"}
    assert reaches("server.realtime.hub", ABOVE_STORAGE) and not reaches("server.errors", ABOVE_STORAGE)

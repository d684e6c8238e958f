"""The README stays true: CI runs its test command, and it documents every setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("marker", ["TEST-COMMAND", "LINT-COMMAND"])
def test_ci_runs_the_readme_commands(marker: str) -> None:
    lines = (ROOT / ".ci/run").read_text().splitlines()
    command = lines[lines.index(f"# {marker} (kept identical to the README's; a unit test checks it)") + 1]
    assert command in (ROOT / "README.md").read_text()


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []

"""The browser widget's own checks, so CI runs them: TypeScript over its JSDoc, and `node --test` on its state."""

from __future__ import annotations

import subprocess

from tests.support import node

TIMEOUT = 180.0
"""Both take a few seconds; a slow CI machine gets room, a hung process does not hang the suite."""


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=node.ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}{result.stderr}"


def test_the_widget_type_checks() -> None:
    node.require(node.TSC)
    # --no: never download a TypeScript of npx's choosing; use the locked one in node_modules.
    run(["npx", "--no", "--", "tsc", "-p", "tsconfig.json"])


def test_the_widget_state_unit_tests_pass() -> None:
    run([node.node(), "--test", "tests/widget/"])

"""The widget's JavaScript tooling (TypeScript, axe-core), installed by `npm ci` into the repository root."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.services import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
AXE = NODE_MODULES / "axe-core" / "axe.min.js"
TSC = NODE_MODULES / ".bin" / "tsc"


def missing(reason: str) -> NoReturn:
    """No Node tooling: a local run skips with the reason; CI (`REQUIRE_SERVICES=1`) fails."""
    message = f"{reason} (run `npm ci` in the repository root)"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(message)


def node() -> str:
    """The `node` executable, or the test is skipped (failed in CI)."""
    path = shutil.which("node")
    if path is None:
        missing("no `node` on the PATH")
    return path


def require(path: Path) -> Path:
    """`path` inside node_modules, or the test is skipped (failed in CI)."""
    if not path.is_file():
        missing(f"{path.relative_to(ROOT)} is missing")
    return path

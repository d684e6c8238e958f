"""Every third-party module the server and the CLI import is a declared runtime dependency.

`pip install -e .` (no extras) must be enough to run `python -m server` and `chat-demo`: a module
that only a test extra pulls in works in the test venv and fails for every user.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("server", "client_demo", "migrations")


def _imported_top_level_modules() -> dict[str, str]:
    """Top-level module -> one file importing it, over the runtime packages."""
    found: dict[str, str] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_every_runtime_import_is_a_declared_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalise(Requirement(spec).name) for spec in project["dependencies"]}
    distributions = packages_distributions()
    own = {*RUNTIME_PACKAGES, "tests", "bench"}
    missing = {}
    for module, where in _imported_top_level_modules().items():
        if module in own or module in sys.stdlib_module_names or module == "__future__":
            continue
        providers = {_normalise(dist) for dist in distributions.get(module, [])}
        if not providers & declared:
            missing[module] = where
    assert missing == {}, f"imported but not in [project].dependencies: {missing}"

"""Imports flow one way (DESIGN.md principle 1): every module's imports of our packages, read from its AST.

agent_common is at the bottom and imports none of ours; the tools and the hooks
stand on it alone (a hook uses the hooks' toolkit, never another hook); only the
dispatcher, heat_config, may import the hooks, to find and run them.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent

#: package → the packages of ours it may import (itself always allowed).
ALLOWED: Dict[str, Set[str]] = {
    "agent_common": set(),
    "os_collect_config": {"agent_common"},
    "os_apply_config": {"agent_common"},
    "os_refresh_config": {"agent_common"},
    "hooks": {"agent_common"},
    "heat_config": {"agent_common", "hooks"},
}


def imported_packages(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, top-level package) of every import in the module, at any depth (function-level imports too)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def modules(package: str) -> Iterator[Path]:
    return iter(sorted((REPO / package).rglob("*.py")))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package: str) -> None:
    ours = set(ALLOWED)
    wrong = [
        "%s:%d imports %s" % (path.relative_to(REPO), line, imported)
        for path in modules(package)
        for line, imported in imported_packages(path)
        if imported in ours and imported != package and imported not in ALLOWED[package]
    ]
    assert not wrong, "\n".join(wrong)


def test_every_package_is_in_the_graph() -> None:
    """A new top-level package must take its place in ALLOWED, or this test would not see it."""
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "demo", "bench"}
    assert packages == set(ALLOWED)


def test_the_checker_sees_a_function_level_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from heat_config import journal\n")
    assert "heat_config" in {name for _, name in imported_packages(module)}


def test_a_hook_imports_no_other_hook() -> None:
    """What two hooks share lives in hooks/toolkit/, so one hook's change cannot break another."""
    hook_modules = {path.stem for path in (REPO / "hooks").glob("*.py")} - {"__init__"}
    wrong = [
        "%s:%d imports hooks.%s" % (path.relative_to(REPO), node.lineno, node.module.split(".")[1])
        for path in sorted((REPO / "hooks").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[:1] == ["hooks"]
        and len(node.module.split(".")) > 1 and node.module.split(".")[1] in hook_modules
    ]
    assert not wrong, "\n".join(wrong)

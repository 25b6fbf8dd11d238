"""Helpers for os-apply-config tests: a template tree, metadata files and an output root in the sandbox."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


class OacEnv:
    def __init__(self, sandbox, run_tool) -> None:
        self.sandbox = sandbox
        self.run_tool = run_tool
        self.templates = Path(sandbox.env["OS_CONFIG_APPLIER_TEMPLATES"])
        self.out = sandbox.path("out")
        self.out.mkdir()
        self.log_file = sandbox.path("log", "os-apply-config.log")
        self.state_dir = sandbox.path("lib", "os-apply-config")  # the render cache's

    def template(self, rel: str, text: str, mode: int = 0o644, oac: str = None) -> Path:
        path = self.templates / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        if oac is not None:
            Path(str(path) + ".oac").write_text(oac)
        return path

    def metadata(self, name: str, doc: Any) -> str:
        path = self.sandbox.path("cache", name)
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        return str(path)

    def run(self, *args: str, env=None, **kwargs):
        merged = {"OS_APPLY_CONFIG_LOG_FILE": str(self.log_file), "OS_APPLY_CONFIG_STATE_DIR": str(self.state_dir)}
        merged.update(env or {})
        return self.run_tool("os-apply-config", list(args), env=merged, **kwargs)

    def render(self, *args: str, **kwargs):
        """A render into the sandbox's output root."""
        return self.run("-o", str(self.out), "--fallback-metadata", *args, **kwargs)

    def output(self, rel: str) -> str:
        return (self.out / rel).read_text()

    def snapshot(self) -> dict:
        """Every path under the output root with its content, inode and mtime: equal means untouched."""
        return {str(p.relative_to(self.out)): (p.is_dir() or p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns)
                for p in self.out.rglob("*")}


def one_error_line(result) -> str:
    """The failed run's single ERROR line: exit 1, no traceback, and every stderr line a log line."""
    lines = result.stderr.splitlines()
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(line.startswith("[") for line in lines), result.stderr
    errors = [line for line in lines if " [ERROR] " in line]
    assert len(errors) == 1, result.stderr
    return errors[0].split(" [ERROR] ", 1)[1]


@pytest.fixture
def oac(sandbox, run_tool) -> OacEnv:
    return OacEnv(sandbox, run_tool)

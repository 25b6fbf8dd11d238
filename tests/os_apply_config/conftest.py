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


@pytest.fixture
def oac(sandbox, run_tool) -> OacEnv:
    return OacEnv(sandbox, run_tool)

"""Helpers for os-refresh-config and dib-run-parts tests: scripts in a sandboxed base dir."""
from __future__ import annotations

from pathlib import Path

import pytest


def script(directory: Path, name: str, body: str, mode: int = 0o755, shebang: str = "#!/bin/sh\n") -> Path:
    """Write an executable script ``directory/name`` (``shebang=""`` for one without)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(shebang + body)
    path.chmod(mode)
    return path


@pytest.fixture
def base(sandbox) -> Path:
    return Path(sandbox.env["OS_REFRESH_CONFIG_BASE_DIR"])


@pytest.fixture
def orc(run_tool, sandbox):
    """Run os-refresh-config with its lock file inside the sandbox."""
    lockfile = str(sandbox.path("run", "orc.lock"))

    def run(*args: str, **kwargs):
        return run_tool("os-refresh-config", ["--lockfile", lockfile, *args], **kwargs)

    run.lockfile = lockfile
    return run

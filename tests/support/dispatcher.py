"""heat-config's files in a sandbox: the deployments it reads, the state it keeps, and a background run to kill."""
from __future__ import annotations

import json
import os
import signal as signals
import subprocess
from pathlib import Path
from typing import Any, Dict

from tests.support.sandbox import BIN_DIR, PLANTED_SECRETS


def write_deployments(sandbox, deployments: Any) -> Path:
    text = deployments if isinstance(deployments, str) else json.dumps(deployments)
    return sandbox.write("run/heat-config", text, 0o644)


def deployed(sandbox, *parts: str) -> Path:
    return sandbox.path("deployed", *parts)


def journal(sandbox, dep: str) -> Dict[str, Any]:
    return json.loads(deployed(sandbox, "journal", dep + ".json").read_text())


def assert_no_secret_on_disk_outside_state(sandbox) -> None:
    """Planted secrets may only be in 0600 files: the state dir and the deployments file (SPEC §12.10)."""
    for root, _, files in os.walk(sandbox.root):
        for name in files:
            path = os.path.join(root, name)
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            if any(s in text for s in PLANTED_SECRETS):
                allowed = path.startswith(str(deployed(sandbox))) or path == str(sandbox.path("run", "heat-config"))
                assert allowed, "secret in %s" % path
                assert os.stat(path).st_mode & 0o077 == 0, "secret in a non-private file %s" % path


def start_dispatcher(sandbox, env=None) -> "subprocess.Popen":
    """The real ``heat-config`` in the background, for a test that kills it."""
    merged = dict(sandbox.env)
    merged.update(env or {})
    return subprocess.Popen([str(BIN_DIR / "heat-config")], env=merged, cwd=str(sandbox.root),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_pid_from(path) -> None:
    """Stop what this test started: the script that wrote its pid leads its own process group."""
    try:
        os.killpg(int(path.read_text()), signals.SIGKILL)
    except (ProcessLookupError, ValueError, FileNotFoundError):
        pass

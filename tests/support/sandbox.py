"""A temporary root with every tool path redirected into it, and the real console scripts run inside it.

Tests run the installed console scripts as real subprocesses (the way users and
os-refresh-config meet them), never the host's /etc, /var, /usr or /opt.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from tests.support.wait import WaitTimeout, wait_for

#: The console scripts live beside the interpreter that runs the tests (the project's venv).
BIN_DIR = Path(sys.executable).parent

#: Secrets the tests plant in configs and deployments; no log line may ever show one.
PLANTED_SECRETS = (
    "planted-Pa55word-9f1c",
    "planted-SecretKey-77e2",
    "planted-temp-url-sig-3b8d",
    "planted-token-0c4a",
)


@dataclass
class Sandbox:
    """A temporary root with every tool path redirected into it."""

    root: Path
    env: Dict[str, str] = field(default_factory=dict)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def write(self, rel: str, text: str, mode: int = 0o644) -> Path:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(mode)
        return p


@dataclass
class ToolResult:
    argv: List[str]
    returncode: int
    stdout: str
    stderr: str


def assert_no_planted_secret(text: str, where: str) -> None:
    for secret in PLANTED_SECRETS:
        assert secret not in text, "planted secret %r leaked into %s" % (secret, where)


def make_sandbox(tmp_path: Path) -> Sandbox:
    """A Sandbox under ``tmp_path`` (the fuzz tests make one per generated example)."""
    root = tmp_path / "root"
    for d in ("home", "cache", "backup", "run", "lib", "orc", "templates", "deployed", "hooks", "etc", "log"):
        (root / d).mkdir(parents=True)
    (root / "cache").chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HEAT_"))}
    env.update(
        HOME=str(root / "home"),
        PATH="%s:%s" % (BIN_DIR, os.environ.get("PATH", "/usr/bin:/bin")),
        TMPDIR=str(tmp_path),
        LC_ALL="C.UTF-8",
        OS_REFRESH_CONFIG_BASE_DIR=str(root / "orc"),
        OS_CONFIG_APPLIER_TEMPLATES=str(root / "templates"),
        OS_CONFIG_FILES_PATH=str(root / "cache" / "os_config_files.json"),
        # os-apply-config run as root by a hook (apply-config) renders into / and would log and cache on the host
        OS_APPLY_CONFIG_LOG_FILE=str(root / "log" / "os-apply-config.log"),
        OS_APPLY_CONFIG_STATE_DIR=str(root / "lib" / "os-apply-config"),
        HEAT_SHELL_CONFIG=str(root / "run" / "heat-config"),
        HEAT_CONFIG_DEPLOYED=str(root / "deployed"),
        HEAT_CONFIG_DEPLOYED_OLD=str(root / "run" / "deployed-old"),
        HEAT_CONFIG_HOOKS=str(root / "hooks"),
    )
    env.pop("PYTHONPATH", None)
    return Sandbox(root=root, env=env)


def run_in_sandbox(
    sandbox: Sandbox,
    name: str,
    args: Sequence[str] = (),
    *,
    env: Optional[Dict[str, str]] = None,
    input: Optional[str] = None,
    timeout: float = 60,
    cwd: Optional[str] = None,
) -> ToolResult:
    """``run_tool`` for a given sandbox: the console script ``name`` as a real process, cwd in the sandbox.

    It runs in a session of its own so that a time-out kills what it started too (a hook holding
    its output pipe open would otherwise keep the test waiting after the tool itself was killed)."""
    argv = [str(BIN_DIR / name), *args]
    merged = dict(sandbox.env)
    if env:
        merged.update(env)
    proc = subprocess.Popen(
        argv, env=merged, stdin=subprocess.PIPE if input is not None else None,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        cwd=cwd or str(sandbox.root), start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # a grandchild in a session of its own holds the pipes
            pass
        raise
    assert_no_planted_secret(stderr, "stderr of %s" % name)
    return ToolResult(argv, proc.returncode, stdout, stderr)


def process_gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether ``pid`` has exited within ``timeout`` seconds (tests of group kills ask this of grandchildren)."""
    try:
        return wait_for(lambda: not _alive(pid), timeout, "pid %d to exit" % pid)
    except WaitTimeout:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def hook_json(run_tool, group: str, deployment: Dict, env: Optional[Dict[str, str]] = None, timeout: float = 60):
    """Run one hook through ``heat-config-hook GROUP`` (deployment JSON on stdin) and return (its JSON result, the run)."""
    result = run_tool("heat-config-hook", [group], input=json.dumps(deployment), env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result

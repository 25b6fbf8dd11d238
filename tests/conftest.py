"""Shared fixtures: a sandbox that redirects every path the tools use, and a runner for the real commands.

The helpers behind them live in tests.support.sandbox, which the demo and the benches import too;
this file also proves after the session that no test wrote to the host's default paths.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

import pytest

from tests.support.sandbox import Sandbox, ToolResult, make_sandbox, run_in_sandbox

#: Fixtures shared across packages: the private container engine (session fixture ``docker_engine``) of the hook
#: and image tests, the loopback Keystone + Heat + Swift + Zaqar (``cloud``) of the collector and signal tests, and
#: the real control plane (``control_plane``, ``heat``) of tests/e2e and tests/vm.
pytest_plugins = ("tests.support.docker_engine", "tests.servers.cloud", "tests.e2e.plane_fixtures")


@pytest.fixture(autouse=True)
def _own_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without an inherited log format, and one set in-process (setup_logging exports it)
    does not leak into the commands later tests run."""
    monkeypatch.delenv("OS_CONFIG_AGENTS_LOG_FORMAT", raising=False)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


@pytest.fixture
def run_tool(sandbox: Sandbox):
    """Run a console script of this distribution as a real process; its stderr is checked for planted secrets."""

    def run(name: str, args: Sequence[str] = (), **kw) -> ToolResult:
        return run_in_sandbox(sandbox, name, args, **kw)

    return run


@pytest.fixture
def hc(sandbox):
    """The environment every dispatcher test runs with (heat_config's, os-collect-config's signal retry):
    script hook dirs and a short signal retry bound."""
    sandbox.env.update(
        HEAT_SCRIPT_WORKING=str(sandbox.path("lib", "heat-config-script")),
        HEAT_SCRIPT_OUTPUTS=str(sandbox.path("run", "heat-config-script")),
        HEAT_CONFIG_SIGNAL_RETRY_S="3",
    )
    return sandbox


#: Host paths the tools use by default; the suite redirects every one of them, and this proves it.
HOST_DEFAULT_PATHS = (
    "/etc/os-collect-config.conf", "/etc/os-collect-config.conf.d",
    "/var/lib/os-collect-config", "/var/run/os-collect-config", "/var/lib/heat-cfntools",
    "/var/lib/heat-config", "/var/run/heat-config", "/var/lib/os-apply-config-deployments",
    "/var/lib/os-apply-config",
    "/var/log/os-apply-config.log", "/var/run/os-refresh-config.lock",
    "/usr/libexec/os-refresh-config", "/usr/libexec/os-apply-config", "/usr/libexec/heat-config",
    "/opt/stack",
)


def _host_paths_state() -> Dict[str, Optional[int]]:
    """Each default path's newest mtime (itself and its direct entries), or None when absent."""
    state: Dict[str, Optional[int]] = {}
    for path in HOST_DEFAULT_PATHS:
        try:
            newest = os.lstat(path).st_mtime_ns
        except FileNotFoundError:
            state[path] = None
            continue
        if os.path.isdir(path):
            for entry in os.scandir(path):
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime_ns)
        state[path] = newest
    return state


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config._host_paths_before = _host_paths_state()  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = getattr(session.config, "_host_paths_before", None)
    if before is None:
        return
    touched = [p for p, mtime in _host_paths_state().items() if mtime != before.get(p)]
    if touched:
        sys.stderr.write("\nFAILED: the test run wrote to host paths it must redirect: %s\n" % ", ".join(touched))
        session.exitstatus = 1

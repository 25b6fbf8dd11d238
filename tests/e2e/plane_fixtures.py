"""The real control plane (tests/e2e/controlplane.py) as a session fixture, shared by tests/e2e and tests/vm.

It is started once per session and stopped by PID at the end; its setup time and each scenario's time are
printed in the terminal summary (and live, while it starts), so CI logs show where the minutes went.
OCA_E2E_REUSE=<state dir> runs against a plane already started by hand
(``python tests/e2e/controlplane.py start --state-dir DIR``).
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.e2e import controlplane
from tests.support.terminal import say

TIMINGS: List[Tuple[str, float]] = []
#: Markers of the suites whose scenario times the summary lists.
TIMED_MARKERS = ("e2e", "vm")


def pytest_runtest_logreport(report):
    if report.when == "call" and any(m in report.keywords for m in TIMED_MARKERS):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        TIMINGS.append(("%s [%s]" % (report.nodeid.split("::", 1)[-1], outcome), report.duration))


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("e2e and vm timings (real Keystone + Heat)")
    for name, seconds in TIMINGS:
        terminalreporter.write_line("%7.1f s  %s" % (seconds, name))


@pytest.fixture(scope="session")
def control_plane(request, tmp_path_factory) -> Dict[str, Any]:
    reuse = os.environ.get("OCA_E2E_REUSE")
    if reuse:  # a developer's plane from `controlplane.py start --state-dir DIR`: use it, leave it running
        say(request, "\ne2e: reusing the control plane in %s" % reuse)
        yield controlplane.ControlPlane(Path(reuse)).info()
        return
    started = time.monotonic()
    venv, venv_took = controlplane.ensure_venv()
    TIMINGS.append(("control plane virtualenv (%s)" % ("created" if venv_took else "cached"), venv_took))
    say(request, "\ne2e: control plane virtualenv %s ready in %.1f s" % (venv, venv_took))
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("controlplane"), venv, access_logs=True)
    t0 = time.monotonic()
    try:
        info = plane.start()
    except Exception:
        plane.stop()
        raise
    TIMINGS.append(("control plane start (rabbitmq, keystone, swift, zaqar, heat)", time.monotonic() - t0))
    TIMINGS.extend(("  of which %s" % step, seconds) for step, seconds in info.get("timings", {}).items())
    say(request, "e2e: control plane started in %.1f s (setup + start %.1f s), state in %s"
         % (time.monotonic() - t0, time.monotonic() - started, plane.dir))
    yield info
    plane.stop()


@pytest.fixture(scope="session")
def heat(control_plane) -> controlplane.Heat:
    return controlplane.Heat(control_plane)

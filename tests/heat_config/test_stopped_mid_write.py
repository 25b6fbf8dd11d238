"""A SIGTERM (systemctl stop, docker stop) inside one of the dispatcher's state writes.

The dispatcher writes every file of its state through a temp file beside it. With SIGTERM's default action
a stop that came between the temp file's fsync and its rename left the temp file in the deployed dir
until the next run removed it. The dispatcher now finishes the write, then dies of the signal: strace
injects the SIGTERM at the fsync of the first temp file, and the trace must show that temp file renamed
into place afterwards, with nothing left beside the state and the next run completing the deployment.
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, journal, write_deployments
from tests.support.sandbox import BIN_DIR


def test_a_sigterm_inside_a_state_write_ends_the_dispatcher_after_the_rename(hc, cloud, run_tool):
    strace = shutil.which("strace")
    assert strace, "strace is missing: scripts/setup installs it (scripts/debian-packages.txt)"
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    trace = hc.path("trace")
    run = subprocess.run([strace, "-qq", "-y", "-e", "signal=none", "-e", "trace=fsync,rename",
                          "-e", "inject=fsync:signal=SIGTERM:when=1", "-o", str(trace),
                          str(BIN_DIR / "heat-config")],
                         env=hc.env, cwd=str(hc.root), capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGTERM, run.stderr
    calls = trace.read_text().splitlines()
    first_fsync = next(c for c in calls if c.startswith("fsync("))
    temp = re.search(r"<([^>]*/tmp[^/>]*)>", first_fsync)
    assert temp and temp.group(1).startswith(str(deployed(hc))), "the SIGTERM did not land in a state write: %s" % calls
    assert any(c.startswith('rename("%s"' % temp.group(1)) for c in calls), "the write was not finished: %s" % calls

    assert list(deployed(hc).rglob("tmp*")) == [], "left by the SIGTERM inside the write of %s" % temp.group(1)
    for path in deployed(hc).rglob("*.json"):
        json.loads(path.read_text())

    assert run_tool("heat-config").returncode == 0
    assert journal(hc, dep_id(0))["signal"] == "sent"

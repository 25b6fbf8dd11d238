"""What a power cut finds: every file the dispatcher puts in place was on disk before it was renamed there.

A kill -9 loses nothing that was written, so the kill tests cannot see a missing fsync; a power cut loses
whatever the kernel had not flushed. The VM suite (tests/vm) found it for real: after a power cut during
a hook, the deployment's marker ``<id>.json``, renamed into place without an fsync, came back empty, and
the interrupted deployment could not be signalled (its signal URL is in that file). This test traces the
dispatcher's own fsync and rename calls (strace) and requires, for every state file under the deployed
dir, an fsync of the temp file before its rename.
"""
from __future__ import annotations

import re
import shutil
import subprocess


from tests.support.deployments import cfn_inputs, deployment
from tests.support.dispatcher import deployed, write_deployments
from tests.support.sandbox import BIN_DIR


def test_every_state_file_is_flushed_before_it_is_renamed_into_place(hc, cloud):
    strace = shutil.which("strace")
    assert strace, "strace is missing: scripts/setup installs it (scripts/debian-packages.txt)"
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    trace = hc.path("trace")
    run = subprocess.run([strace, "-f", "-qq", "-y", "-e", "signal=none", "-e", "trace=fsync,rename",
                          "-o", str(trace), str(BIN_DIR / "heat-config")],
                         env=hc.env, cwd=str(hc.root), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    flushed = set()
    renamed = []
    for call in trace.read_text().splitlines():
        body = re.sub(r"^\d+\s+", "", call)  # strace -f starts each line with the pid, padded to 5 columns
        if body.startswith("fsync(") and "<" in body:
            flushed.add(body.split("<", 1)[1].split(">", 1)[0])
        elif body.startswith("rename(") and str(deployed(hc)) in body.split('"')[3]:
            source, target = body.split('"')[1], body.split('"')[3]
            renamed.append(target)
            assert source in flushed, "%s was renamed into place unflushed: a power cut can leave it empty" % target
    names = sorted(p.rsplit("/", 1)[1] for p in renamed)
    assert any(n.endswith(".notify.json") for n in names) and len(names) >= 3, names

"""The README's first command: the demo runs the whole pipeline and says what happened (issue 8).

It runs ``python -m demo`` as scripts/demo does (after setup) and reads its report:
every step ran, the whole-pipeline step's deployments were all signalled to the
loopback Heat and shown by ``heat-config status --wait``, and no credential the demo
hands the agents (the loopback cloud's planted secrets) reaches its output.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.support.sandbox import assert_no_planted_secret

REPO = Path(__file__).resolve().parents[1]


def test_demo_runs_the_whole_pipeline_and_reports_it():
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "demo"], cwd=str(REPO), capture_output=True, text=True, timeout=300)
    took = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, (out + proc.stderr)[-4000:]
    assert_no_planted_secret(out + proc.stderr, "the demo's output")
    steps = re.findall(r"^Step (\d+)\. ", out, re.M)
    assert steps == [str(n) for n in range(1, len(steps) + 1)] and len(steps) >= 7
    pipeline = out.split("Step %s. The whole pipeline" % steps[-1], 1)[1]
    for name, group in (("10_install_web", "script"), ("20_motd", "ansible")):
        assert re.search(r"^ +\S+ +%s +%s +CREATE +succeeded +0 .* sent" % (name, group), pipeline, re.M), pipeline
        assert re.search(r"Heat received the signal of \S+ \(%s\): deploy_status_code 0" % name, pipeline)
    if "30_web (docker-compose)" in pipeline:
        assert re.search(r"Heat received the signal of \S+ \(30_web\): deploy_status_code 0", pipeline)
        assert "its log says: serving Demo Shop" in pipeline
    assert "(exit 0: all succeeded)" in pipeline
    assert "signalled 0 more deployment(s)" in pipeline
    assert re.search(r"^Done in [\d.]+ s", out, re.M)
    print("demo took %.1f s" % took)

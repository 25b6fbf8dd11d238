"""Limits on an executable hook, through the real dispatcher: its timeout and the size of its result.

Each test drops an executable into $HEAT_CONFIG_HOOKS, runs the real ``heat-config``
with a CFN signal to the loopback heat-api-cfn, and reads what that server received.
"""
from __future__ import annotations

import json
import sys
import time

from heat_config.signals import MAX_SIGNAL_CHARS
from hooks.toolkit.context import OUTPUT_CAP
from tests.support.deployments import cfn_inputs, deployment
from tests.support.dispatcher import write_deployments


def test_timeout_holds_for_a_hook_that_never_reads_its_deployment(run_tool, hc, cloud):
    """Issue 12 defect 2: the deployment (400 KB here) was written to the hook's stdin before the timed
    wait; a hook that never read it held the dispatcher until it exited (60 s), and was signalled 0."""
    hc.write("hooks/deaf", "#!/bin/sh\nsleep 60\n", 0o755)
    big = "#" + "x" * 400_000 + "\n"
    write_deployments(hc, [deployment(0, group="deaf", config=big, options={"timeout": 2},
                                      signal=cfn_inputs(cloud))])
    start = time.monotonic()
    result = run_tool("heat-config", timeout=90)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert 2 <= elapsed < 12, "the 2 s hook timeout took %.1f s" % elapsed  # 2 s, the hook dies on SIGTERM
    assert len(cloud.cfn.signals) == 1
    body = cloud.cfn.signals[0].body
    assert body["deploy_status_code"] == 124
    assert body["deploy_stderr"].splitlines()[-1] == "timed out after 2 seconds"


LARGE_RESULT_HOOK = """#!%s
import json, sys
sys.stdin.read()
out = "".join("stdout line %%06d\\n" %% i for i in range(700000 // 19))
err = "".join("stderr line %%06d\\n" %% i for i in range(400000 // 19))
json.dump({"result": "ok", "deploy_stdout": out, "deploy_stderr": err, "deploy_status_code": 0}, sys.stdout)
"""


def test_a_large_json_result_keeps_its_outputs_and_the_tails_of_its_streams(run_tool, hc, cloud):
    """Issue 12 defect 3: stdout over 512 KiB was cut before parsing, so a valid JSON result was
    signalled as raw text and its outputs were lost."""
    hc.write("hooks/chatty", LARGE_RESULT_HOOK % sys.executable, 0o755)
    write_deployments(hc, [deployment(0, group="chatty", config="run", outputs=["result"],
                                      signal=cfn_inputs(cloud))])
    result = run_tool("heat-config", timeout=90)
    assert result.returncode == 0, result.stderr
    assert len(cloud.cfn.signals) == 1
    raw = cloud.cfn.requests[-1].body
    assert len(raw) <= MAX_SIGNAL_CHARS
    body = cloud.cfn.signals[0].body
    assert body["result"] == "ok"
    assert body["deploy_status_code"] == 0
    for name, size in (("deploy_stdout", 700000 // 19), ("deploy_stderr", 400000 // 19)):
        kept = body[name]
        stream = name.split("_")[1]
        first, rest = kept.split("\n", 1)
        assert "cut" in first, first  # the cut is stated at the start
        assert rest.endswith("%s line %06d\n" % (stream, size - 1))  # the tail is kept
        assert len(rest) > 100_000
    stored = json.loads(hc.path("deployed", deployment(0)["id"] + ".notify.json").read_text())
    assert stored["result"] == "ok"


def test_large_raw_output_keeps_its_tail_within_the_output_cap(run_tool, hc, cloud):
    """Output that is not a JSON result is still kept as a 512 KiB tail (the result cap is for JSON only)."""
    hc.write("hooks/noisy", "#!/bin/sh\ncat >/dev/null\nseq 1 300000\n", 0o755)
    write_deployments(hc, [deployment(0, group="noisy", config="run", signal=cfn_inputs(cloud))])
    assert run_tool("heat-config", timeout=90).returncode == 0
    stdout = cloud.cfn.signals[0].body["deploy_stdout"]
    first, rest = stdout.split("\n", 1)
    assert "bytes of earlier output cut" in first
    assert rest.endswith("\n299999\n300000\n") and len(rest) == OUTPUT_CAP

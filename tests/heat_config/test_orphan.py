"""When only the dispatcher dies, its hook must not outlive it into the next run (issue 12 defect 14, SPEC §12.3).

The OOM killer picks the dispatcher, not its hook: the hook's process group keeps
running.  The next run stops that group (SIGTERM, then SIGKILL after the grace
period of agent_common/proc.py) before it reports the deployment interrupted and
before any other hook starts, so two hooks never overlap.  A recycled pid is
never taken for the hook.  What a kill in the middle of a write leaves (a
temporary file, a missing ``<id>.notify.json``) is cleaned up or completed.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, journal, kill_pid_from, start_dispatcher, write_deployments
from tests.support.wait import wait_for


def proc_state(pid: int) -> str:
    """The process's state letter; "gone" when it no longer exists. An orphan nobody reaps stays a zombie (Z)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def alive(pid: int) -> bool:
    return proc_state(pid) not in ("gone", "Z")


def pids(sandbox, *names):
    return [int(sandbox.path(n).read_text()) for n in names]


#: The first hook: records its pid and its child's, then waits on the child (``wait`` lets a trap run).
ORPHAN = """#!/bin/sh
echo $$ > {root}/hook0.pid
{trap}
sleep 120 &
echo $! > {root}/sleep0.pid
echo started >> {root}/hook0.events
while true; do wait; done
"""

#: The second hook: says whether the first hook or its child was still alive when it started.
WITNESS = """#!/bin/sh
for name in hook0 sleep0; do
    state=$(sed 's/.*) //' /proc/$(cat {root}/$name.pid)/stat 2>/dev/null | cut -d' ' -f1)
    case "$state" in ""|Z) echo "$name gone" ;; *) echo "$name alive:$state" ;; esac
done > {root}/hook1.saw
"""


def start_and_kill_dispatcher(sandbox, trap: str, cloud):
    root = sandbox.root
    write_deployments(sandbox, [
        deployment(0, config=ORPHAN.format(root=root, trap=trap), signal=cfn_inputs(cloud)),
        deployment(1, config=WITNESS.format(root=root), signal=cfn_inputs(cloud, "deploy_1")),
    ])
    proc = start_dispatcher(sandbox)
    try:
        wait_for(lambda: sandbox.path("hook0.events").exists(), timeout=30, what="the first hook to start")
        wait_for(lambda: journal(sandbox, dep_id(0)).get("hook_pgid"), timeout=30,
                 what="the hook's group to be recorded")
    finally:
        proc.send_signal(signal.SIGKILL)  # as the OOM killer would: the dispatcher only
        proc.wait()
    hook, child = pids(sandbox, "hook0.pid", "sleep0.pid")
    assert alive(hook) and alive(child)  # the orphan this is about
    return hook, child


@pytest.mark.parametrize("trap,stopped_by", [
    ("trap 'echo term >> {root}/hook0.events; kill $!; exit 143' TERM", "SIGTERM"),
    ("trap '' TERM", "SIGKILL after the grace period"),
], ids=["exits-on-sigterm", "ignores-sigterm"])
def test_orphaned_hook_is_stopped_before_it_is_reported_and_before_the_next_hook(run_tool, hc, cloud, trap,
                                                                                 stopped_by):
    trap = trap.format(root=hc.root)
    try:
        hook, child = start_and_kill_dispatcher(hc, trap, cloud)
        journaled = journal(hc, dep_id(0))
        assert journaled["step"] == "running" and journaled["hook_pgid"] == hook

        start = time.monotonic()
        result = run_tool("heat-config")
        took = time.monotonic() - start
        assert result.returncode == 0, result.stderr
        assert not alive(hook) and not alive(child)
        assert hc.path("hook1.saw").read_text() == "hook0 gone\nsleep0 gone\n"  # never overlapped
        lines = result.stderr.splitlines()
        (stopping,) = [i for i, line in enumerate(lines) if "still running" in line]
        (reported,) = [i for i, line in enumerate(lines) if "was interrupted while its hook ran" in line]
        assert stopping < reported
        assert "process group %d" % hook in lines[stopping] and dep_id(0) in lines[stopping]
        if stopped_by == "SIGTERM":
            assert hc.path("hook0.events").read_text() == "started\nterm\n"
            assert took < 10  # not the whole grace period
        else:
            assert took >= 10  # SIGTERM was ignored: SIGKILL came after the grace period

        bodies = [(s.arn.rsplit("/", 1)[-1], s.body) for s in cloud.cfn.signals]
        assert [name for name, _ in bodies] == ["deploy_0", "deploy_1"]
        assert bodies[0][1]["deploy_status_code"] != 0
        assert "stopped while this deployment's hook was running" in bodies[0][1]["deploy_stderr"]
        run_tool("heat-config")
        assert len(cloud.cfn.signals) == 2  # the interrupted signal is sent once
    finally:
        for name in ("hook0.pid", "sleep0.pid"):
            kill_pid_from(hc.path(name))


def test_a_recycled_pid_is_not_taken_for_the_hook(run_tool, hc, cloud):
    """The journal names a group whose leader's pid now belongs to another process: it is left alone."""
    stranger = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        dep = deployment(0, signal=cfn_inputs(cloud))
        write_deployments(hc, [dep])
        deployed(hc, dep["id"] + ".json").write_text(json.dumps(dep))
        deployed(hc, "journal").mkdir()
        deployed(hc, "journal", dep["id"] + ".json").write_text(json.dumps(
            {"id": dep["id"], "name": dep["name"], "group": "script", "step": "running", "started_at": 1.0,
             "hook_pgid": stranger.pid, "hook_proc": "an-earlier-boot 12345"}))
        deployed(hc, "journal", dep["id"] + ".open").write_text("")
        result = run_tool("heat-config")
        assert result.returncode == 0 and "was interrupted while its hook ran" in result.stderr
        assert "still running" not in result.stderr
        assert stranger.poll() is None and alive(stranger.pid)
        assert cloud.cfn.signals[0].body["deploy_status_code"] != 0
    finally:
        stranger.kill()
        stranger.wait()


STALE = ("tmpabcd1234", "tmp_zz9yx8w")


def test_what_a_kill_mid_write_leaves_is_cleaned_and_completed(run_tool, hc, cloud):
    """A zero-byte temp file of atomic_write in the deployed dir and the journal, and a finished deployment
    whose ``<id>.notify.json`` was never written (pending signal, and no signal at all)."""
    pending, quiet = deployment(0, signal=cfn_inputs(cloud)), deployment(1)
    write_deployments(hc, [pending, quiet])
    deployed(hc, "journal").mkdir()
    data = {"deploy_stdout": "done\n", "deploy_stderr": "", "deploy_status_code": 0}
    for dep, signal_state, transport in ((pending, "pending", "CFN_SIGNAL"), (quiet, "none", "NO_SIGNAL")):
        deployed(hc, dep["id"] + ".json").write_text(json.dumps(dep))
        deployed(hc, "journal", dep["id"] + ".json").write_text(json.dumps(
            {"id": dep["id"], "name": dep["name"], "group": "script", "step": "finished", "started_at": 1.0,
             "finished_at": 2.0, "status_code": 0, "failed": False, "signal": signal_state,
             "transport": transport, "signal_data": data}))
        deployed(hc, "journal", dep["id"] + ".open").write_text("")
    old = time.time() - 3600
    stale = [deployed(hc, STALE[0]), deployed(hc, "journal", STALE[1])]
    kept = [deployed(hc, "tmpkeep"), deployed(hc, "tmpABCDEFGH"), deployed(hc, "journal", "tmpabcd12345"),
            deployed(hc, "notes.tmpabcd1234")]
    for path in stale + kept:
        path.write_bytes(b"")
        os.utime(path, (old, old))
    newer = deployed(hc, "tmpnewer123")  # ours by name, but written after this run started: not touched
    newer.write_bytes(b"")
    os.utime(newer, (time.time() + 3600, time.time() + 3600))

    result = run_tool("heat-config")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept + [newer])
    for path in stale:
        assert "Removed %s" % path in result.stderr
    for dep in (pending, quiet):
        notify = deployed(hc, dep["id"] + ".notify.json")
        assert json.loads(notify.read_text()) == data and os.stat(notify).st_mode & 0o777 == 0o600
        assert not deployed(hc, "journal", dep["id"] + ".open").exists()
    assert [s.body for s in cloud.cfn.signals] == [data]

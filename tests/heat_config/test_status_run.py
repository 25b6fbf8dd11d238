"""``heat-config status``, ``heat-config run`` and ``heat-config-rebuild-deployed`` (SPEC §12.8, §12.9, §6.8)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from typing import Any, Dict

import pytest

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, start_dispatcher, write_deployments
from tests.support.sandbox import BIN_DIR
from tests.support.wait import wait_for

FIELDS = {"id", "name", "group", "action", "state", "status_code", "duration_s", "signal", "error",
          "started_at", "finished_at"}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def rows_of(run_tool):
    result = run_tool("heat-config", ["status", "--json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["deployments"]


# -- status -------------------------------------------------------------------------------------
def test_status_lists_every_deployment_with_its_fields(run_tool, hc, cloud):
    write_deployments(hc, [
        deployment(0, config="#!/bin/sh\necho ok\n", signal=cfn_inputs(cloud), action="UPDATE"),
        deployment(1, config="#!/bin/sh\necho bad >&2\nexit 3\n"),
    ])
    run_tool("heat-config")
    write_deployments(hc, [deployment(0), deployment(1), deployment(2)])  # a new one not yet run
    rows = rows_of(run_tool)
    assert [set(r) for r in rows] == [FIELDS] * 3
    ok, bad, new = rows
    assert (ok["id"], ok["name"], ok["group"], ok["action"]) == (dep_id(0), "00_deployment", "script", "UPDATE")
    assert (ok["state"], ok["status_code"], ok["signal"]) == ("succeeded", 0, "sent")
    assert isinstance(ok["duration_s"], float)
    assert (bad["state"], bad["status_code"], bad["signal"], bad["error"]) == ("failed", 3, "none", "bad")
    assert (new["state"], new["signal"]) == ("pending", "none")

    table = run_tool("heat-config", ["status"])
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert len(lines) == 4 and lines[0].split()[:5] == ["ID", "NAME", "GROUP", "ACTION", "STATE"]
    assert dep_id(1) in lines[2] and "failed" in lines[2] and "bad" in lines[2]


def test_status_runs_nothing_and_changes_nothing(run_tool, hc):
    write_deployments(hc, [deployment(0)])
    before = sorted(os.listdir(hc.path("deployed")))
    assert run_tool("heat-config", ["status"]).returncode == 0
    assert sorted(os.listdir(hc.path("deployed"))) == before
    assert not hc.path("lib", "heat-config-script").exists()


HELD_HOOK = """#!/bin/sh
touch {started}
i=0
while [ ! -e {release} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
date +%s.%N > {finished}
"""


def test_status_wait_blocks_until_finished_and_signalled(run_tool, hc):
    """Issue 12 defect 15: proven by order, not by a sleep. The hook is held until the test releases it;
    while it is held, a --wait with a time-out times out on the running deployment; a --wait started
    before the dispatcher ends after the hook's last line (timestamps) and shows the deployment done."""
    started, release, finished = hc.path("started"), hc.path("release"), hc.path("finished")
    write_deployments(hc, [deployment(0, config=HELD_HOOK.format(started=started, release=release,
                                                                 finished=finished))])
    waiter = subprocess.Popen([str(BIN_DIR / "heat-config"), "status", "--wait", "--timeout", "60"],
                              env=hc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ended: Dict[str, Any] = {}

    def wait_for_the_waiter() -> None:
        ended["out"], ended["err"] = waiter.communicate(timeout=90)
        ended["at"] = time.time()

    watcher = threading.Thread(target=wait_for_the_waiter)
    watcher.start()
    dispatcher = start_dispatcher(hc)
    try:
        wait_for(started.exists, timeout=30, what="the hook to start")
        probe = run_tool("heat-config", ["status", "--wait", "--timeout", "1"])
        assert probe.returncode == 2 and "timed out after 1" in probe.stderr
        (row,) = [line for line in probe.stdout.splitlines() if dep_id(0) in line]
        assert " running " in row
        assert "at" not in ended  # the first waiter too is still waiting, on the same running deployment
        release.touch()
        assert dispatcher.wait(timeout=60) == 0
        watcher.join(timeout=60)
    finally:
        for proc in (dispatcher, waiter):
            if proc.poll() is None:
                proc.kill()
        watcher.join(timeout=10)
    assert waiter.returncode == 0, ended["err"]
    assert ended["at"] > float(finished.read_text())  # it returned after the hook's last line ran
    (row,) = [line for line in ended["out"].splitlines() if dep_id(0) in line]
    assert " succeeded " in row and " none " in row


def test_status_wait_exit_1_when_any_failed_and_2_on_timeout(run_tool, hc):
    write_deployments(hc, [deployment(0, config="#!/bin/sh\nexit 1\n"), deployment(1)])
    run_tool("heat-config")
    assert run_tool("heat-config", ["status", "--wait"]).returncode == 1
    write_deployments(hc, [deployment(2)])
    start = time.monotonic()
    result = run_tool("heat-config", ["status", "--wait", "--timeout", "1"])
    assert result.returncode == 2 and "timed out" in result.stderr
    assert time.monotonic() - start < 10


def test_status_on_an_unreadable_deployments_file_is_one_line_and_exit_1(run_tool, hc):
    """Issue 15 item 12: the error, then an empty table, exit 0, became one line and exit 1."""
    write_deployments(hc, "{broken")
    result = run_tool("heat-config", ["status"])
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert "not valid JSON" in line


def test_status_id_prints_the_whole_record_secrets_redacted(run_tool, hc, cloud):
    """SPEC §12.14: times, each signal attempt, the result file and the output tails, as text and JSON."""
    from tests.support.sandbox import PLANTED_SECRETS

    secret = [{"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]}]
    config = "#!/bin/sh\necho \"out line for $deploy_password\"\necho 'err line' >&2\nexit 4\n"
    write_deployments(hc, [deployment(0, config=config, signal=cfn_inputs(cloud) + secret), deployment(1)])
    run_tool("heat-config")

    result = run_tool("heat-config", ["status", dep_id(0), "--json"])
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["id"], record["state"], record["status_code"], record["signal"]) == (dep_id(0), "failed", 4, "sent")
    for key in ("received_at", "started_at", "finished_at", "signalled_at"):
        assert ISO_UTC.match(record[key]), (key, record[key])
    assert [a["result"] for a in record["signal_attempts"]] == ["sent"] and ISO_UTC.match(record["signal_attempts"][0]["at"])
    assert record["result_file"] == str(deployed(hc, dep_id(0) + ".notify.json"))
    assert json.loads(deployed(hc, dep_id(0) + ".notify.json").read_text())["deploy_status_code"] == 4
    assert record["deploy_stdout"] == "out line for ***\n" and record["deploy_stderr"] == "err line\n"

    text = run_tool("heat-config", ["status", dep_id(0)])
    assert text.returncode == 0
    assert "signalled_at:" in text.stdout and "  | out line for ***" in text.stdout and "  | err line" in text.stdout
    assert re.search(r"^  \S+Z  sent$", text.stdout, re.M)
    assert PLANTED_SECRETS[0] not in text.stdout + result.stdout

    rows = rows_of(run_tool)
    assert all(ISO_UTC.match(r["started_at"]) and ISO_UTC.match(r["finished_at"]) for r in rows)

    missing = run_tool("heat-config", ["status", "no-such-id"])
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr == "heat-config status: no deployment no-such-id in %s or the journal\n" % hc.env[
        "HEAT_SHELL_CONFIG"]


def test_status_wait_waits_for_the_first_deployments_file(run_tool, hc):
    """SPEC §12.14: on a first boot --wait waits for the file to appear; its time-out names the file."""
    config_file = hc.env["HEAT_SHELL_CONFIG"]
    if os.path.exists(config_file):
        os.unlink(config_file)
    result = run_tool("heat-config", ["status", "--wait", "--timeout", "0.5"])
    assert result.returncode == 2
    assert "waiting for %s to appear" % config_file in result.stderr
    assert run_tool("heat-config", ["status"]).stdout == "no deployments\n"  # plain status: nothing yet, exit 0

    waiter = subprocess.Popen([str(BIN_DIR / "heat-config"), "status", "--wait", "--json", "--timeout", "60"],
                              env=hc.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        write_deployments(hc, [deployment(0)])
        run_tool("heat-config")
        out, err = waiter.communicate(timeout=90)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    # Had it not waited for the file, it would have printed no deployment at all.
    assert [(r["id"], r["state"]) for r in json.loads(out)["deployments"]] == [(dep_id(0), "succeeded")]


# -- run ----------------------------------------------------------------------------------------
SOFTWARE_CONFIG_YAML = """\
type: OS::Heat::SoftwareConfig
properties:
  group: script
  inputs:
    - name: greeting
      default: hello
    - name: who
  outputs:
    - name: message
  config: |
    #!/bin/sh
    echo "$greeting $who ($deploy_action)" | tee $heat_outputs_path.message
    exit $code
"""


def test_run_a_software_config_from_yaml_with_inputs(run_tool, hc):
    path = hc.write("config.yaml", SOFTWARE_CONFIG_YAML)
    result = run_tool("heat-config", ["run", str(path), "--input", "who=world", "--input", "code=0"])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["message"] == "hello world (CREATE)\n"
    assert out["deploy_status_code"] == 0 and out["deploy_stdout"] == "hello world (CREATE)\n"
    assert not os.listdir(hc.path("deployed"))  # no state, no signal


def test_run_exit_status_is_the_hooks_and_action_is_passed(run_tool, hc):
    path = hc.write("config.yaml", SOFTWARE_CONFIG_YAML)
    result = run_tool("heat-config", ["run", str(path), "--input", "code=7", "--action", "DELETE"])
    assert result.returncode == 7
    assert json.loads(result.stdout)["message"] == "hello  (DELETE)\n"


def test_run_a_deployment_json(run_tool, hc):
    dep = deployment(0, config="#!/bin/sh\necho from-deployment\nkill -9 $$\n")
    path = hc.write("dep.json", json.dumps(dep))
    result = run_tool("heat-config", ["run", str(path)])
    out = json.loads(result.stdout)
    assert out["deploy_stdout"] == "from-deployment\n" and out["deploy_status_code"] == -9
    assert result.returncode == 1  # a status outside 1-255 exits 1 (SPEC §12.13.11)


def test_run_user_mistakes_are_one_line(run_tool, hc):
    path = hc.write("config.yaml", SOFTWARE_CONFIG_YAML)
    for args, words in ((["run", str(path), "--input", "novalue"], "expected NAME=VALUE"),
                        (["run", str(hc.path("missing.yaml"))], "missing.yaml"),
                        (["run", str(hc.write("bad.yaml", "a: [unclosed\n"))], "bad.yaml:"),
                        (["run", str(hc.write("nohook.json", '{"group": "nothing-here", "config": ""}'))],
                         "no hook for group nothing-here")):
        result = run_tool("heat-config", args)
        assert result.returncode == 1, args
        assert words in result.stderr and "Traceback" not in result.stderr


# -- rebuild-deployed ---------------------------------------------------------------------------
def test_rebuild_deployed_marks_every_hook_deployment(run_tool, hc):
    metadata = {"deployments": [deployment(0), deployment(1, group="os-apply-config"),
                                deployment(2, group="Heat::Ungrouped"), dict(deployment(3), id="../evil")]}
    meta = hc.write("cache/heat.json", json.dumps(metadata))
    env = {"OS_CONFIG_FILES": str(meta)}
    result = run_tool("heat-config-rebuild-deployed", env=env)
    assert result.returncode == 0, result.stderr
    assert "Found 4 deployments." in result.stdout
    assert "Creating %s so that deployment will not be re-run" % deployed(hc, dep_id(0) + ".json") in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "Marked 1 deployment(s) as deployed in %s: heat-config will not run them again. "
        "To run one again, remove its <id>.json there." % deployed(hc))
    assert deployed(hc, dep_id(0) + ".json").read_text() == ""
    assert not deployed(hc, dep_id(1) + ".json").exists() and not deployed(hc, dep_id(2) + ".json").exists()
    assert not hc.path("evil.json").exists()
    write_deployments(hc, metadata["deployments"])
    assert "already deployed" in run_tool("heat-config").stderr
    assert not hc.path("lib", "heat-config-script").exists()  # nothing re-run


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_rebuild_deployed_help_exits_0_and_changes_nothing(run_tool, hc, flag):
    meta = hc.write("cache/heat.json", json.dumps({"deployments": [deployment(0)]}))
    result = run_tool("heat-config-rebuild-deployed", [flag], env={"OS_CONFIG_FILES": str(meta)})
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: heat-config-rebuild-deployed") and "examples:" in result.stdout
    assert "Reading deployments" not in result.stdout
    assert os.listdir(deployed(hc)) == []


def test_rebuild_deployed_dry_run_lists_what_it_would_mark_and_writes_nothing(run_tool, hc):
    metadata = {"deployments": [deployment(0), deployment(1, group="os-apply-config")]}
    meta = hc.write("cache/heat.json", json.dumps(metadata))
    result = run_tool("heat-config-rebuild-deployed", ["--dry-run"], env={"OS_CONFIG_FILES": str(meta)})
    assert result.returncode == 0, result.stderr
    assert "Would create %s (deployment %s, group script)" % (deployed(hc, dep_id(0) + ".json"), dep_id(0)) \
        in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "Dry run: 1 deployment(s) would be marked as deployed in %s; nothing was changed." % deployed(hc))
    assert os.listdir(deployed(hc)) == []


def test_rebuild_deployed_refuses_unknown_arguments_as_a_usage_error(run_tool, hc):
    result = run_tool("heat-config-rebuild-deployed", ["now"])
    assert result.returncode == 2 and "unrecognized arguments: now" in result.stderr
    assert os.listdir(deployed(hc)) == []


def test_status_wait_ignores_components_with_nothing_for_their_action(run_tool, hc):
    config = {"configs": [{"actions": ["DELETE"], "config": "#!/bin/sh\ntrue\n", "tool": "script"}]}
    write_deployments(hc, [deployment(0, group="component", config=config), deployment(1)])
    run_tool("heat-config")
    rows = rows_of(run_tool)
    assert [r["id"] for r in rows] == [dep_id(1)]
    assert run_tool("heat-config", ["status", "--wait", "--timeout", "5"]).returncode == 0


def test_status_never_shows_a_secret_a_hook_echoed(run_tool, hc):
    from tests.support.sandbox import PLANTED_SECRETS

    dep = deployment(0, config="#!/bin/sh\necho \"login failed for $deploy_password\" >&2\nexit 1\n",
                     signal=[{"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]}])
    write_deployments(hc, [dep])
    run_tool("heat-config")
    for args in (["status"], ["status", "--json"]):
        out = run_tool("heat-config", args).stdout
        assert "login failed for ***" in out and PLANTED_SECRETS[0] not in out

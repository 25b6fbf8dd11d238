"""The dispatcher's compatible behaviour (SPEC §6), run as os-refresh-config runs it."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import assert_no_secret_on_disk_outside_state, deployed, journal, write_deployments
from tests.support.sandbox import PLANTED_SECRETS

ELEMENT_SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "elements", "heat-config",
                              "os-refresh-config", "configure.d", "55-heat-config")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def hook(sandbox, name: str, body: str):
    """An executable hook dropped into $HEAT_CONFIG_HOOKS, as users and elements install them."""
    return sandbox.write("hooks/%s" % name, body, 0o755)


RECORDING_HOOK = """#!/bin/sh
cat > "{out}/$(basename $0).stdin"
echo "$(basename $0)" >> "{out}/order"
{tail}
"""


def recording_hook(sandbox, name: str, tail: str = 'echo \'{"deploy_status_code": 0}\''):
    return hook(sandbox, name, RECORDING_HOOK.format(out=sandbox.root, tail=tail))


def run(run_tool, env=None):
    return run_tool("heat-config", env=env)


# -- start-up (§6.5) ------------------------------------------------------------------------------
def test_missing_deployments_file_exits_1(run_tool, hc):
    result = run(run_tool)
    assert result.returncode == 1
    assert "No config file %s" % hc.path("run", "heat-config") in result.stderr


def test_55_heat_config_element_script_runs_the_dispatcher(hc):
    write_deployments(hc, [deployment(0)])
    proc = subprocess.run([ELEMENT_SCRIPT], env=hc.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert deployed(hc, dep_id(0) + ".json").exists()
    assert mode(ELEMENT_SCRIPT) == 0o755


def test_file_mode_fixed_and_deployed_dir_created_private(run_tool, hc):
    os.rmdir(hc.path("deployed"))
    path = write_deployments(hc, [])
    assert run(run_tool).returncode == 0
    assert mode(path) == 0o600
    assert mode(hc.path("deployed")) == 0o700


def test_legacy_deployed_dir_is_moved(run_tool, hc):
    os.rmdir(hc.path("deployed"))
    old = hc.path("run", "deployed-old")
    old.mkdir()
    (old / (dep_id(0) + ".json")).write_text("{}")
    write_deployments(hc, [deployment(0)])
    result = run(run_tool)
    assert result.returncode == 0
    assert not old.exists()
    assert deployed(hc, dep_id(0) + ".json").read_text() == "{}"  # migrated marker: not run again
    assert "already deployed" in result.stderr


@pytest.mark.parametrize("text", ["", "  \n", "null", "[]"])
def test_empty_deployments_mean_none(run_tool, hc, cloud, text):
    """SPEC §12.13.9: no deployments, exit 0; nothing runs, nothing is signalled, and the deployment of the
    previous run has left the metadata (its files go, its marker stays so it never runs again)."""
    recording_hook(hc, "rec")
    write_deployments(hc, [deployment(0, group="rec", signal=cfn_inputs(cloud))])
    assert run(run_tool).returncode == 0
    write_deployments(hc, text)
    result = run(run_tool)
    assert result.returncode == 0
    assert "[ERROR]" not in result.stderr and "[WARNING]" not in result.stderr, result.stderr
    assert "Deployment %s left the metadata; its files are removed" % dep_id(0) in result.stderr
    assert hc.path("order").read_text() == "rec\n"  # nothing ran
    assert len(cloud.cfn.requests) == 1  # the first run's signal only
    assert sorted(os.listdir(hc.path("deployed"))) == sorted(["journal", dep_id(0) + ".json"])
    assert json.loads(deployed(hc, dep_id(0) + ".json").read_text())["removed_from_metadata"] is True
    assert run_tool("heat-config", ["status"]).stdout == "no deployments\n"


@pytest.mark.parametrize("text,words", [("{not json", "not valid JSON"), ('{"a": 1}', "expected a JSON list")])
def test_unparsable_file_is_one_clear_line_exit_1(run_tool, hc, text, words):
    """SPEC §11.35/§12.7: the original exits 0 silently."""
    path = write_deployments(hc, text)
    result = run(run_tool)
    assert result.returncode == 1
    assert str(path) in result.stderr and words in result.stderr
    assert "Traceback" not in result.stderr


# -- per deployment (§6.6) ------------------------------------------------------------------------
def test_string_inputs_reach_hooks_as_json_text(run_tool, hc):
    """SPEC §12.13.14 (fixing §11.15): JSON text, null as ""; other types untouched."""
    recording_hook(hc, "rec")
    dep = deployment(0, group="rec", inputs=[
        {"name": "t", "type": "String", "value": True},
        {"name": "n", "type": "String", "value": 5},
        {"name": "z", "type": "String", "value": None},
        {"name": "l", "type": "String", "value": [{"file_name": "./a.env"}]},
        {"name": "num", "type": "Number", "value": 7},
    ])
    write_deployments(hc, [dep])
    assert run(run_tool).returncode == 0
    raw = hc.path("rec.stdin").read_text()
    assert "\n" not in raw.strip()  # one line of JSON
    seen = {i["name"]: i["value"] for i in json.loads(raw)["inputs"]}
    assert seen["t"] == "true" and seen["n"] == "5" and seen["z"] == ""
    assert seen["l"] == '[{"file_name": "./a.env"}]'
    assert seen["num"] == 7


def test_marker_and_notify_files(run_tool, hc):
    recording_hook(hc, "rec", tail='echo \'{"deploy_stdout": "x", "deploy_status_code": 0}\'')
    dep = deployment(0, group="rec")
    write_deployments(hc, [dep])
    assert run(run_tool).returncode == 0
    marker = deployed(hc, dep["id"] + ".json")
    notify = deployed(hc, dep["id"] + ".notify.json")
    assert mode(marker) == 0o600 and mode(notify) == 0o600
    assert json.loads(marker.read_text()) == dep
    assert marker.read_text() == json.dumps(dep, indent=2, separators=(",", ": "))
    assert json.loads(notify.read_text()) == {"deploy_stdout": "x", "deploy_status_code": 0}


def test_component_picks_first_config_for_the_action(run_tool, hc):
    recording_hook(hc, "rec")
    recording_hook(hc, "other")
    config = {"configs": [
        {"actions": ["DELETE"], "config": "d", "tool": "other"},
        {"actions": ["CREATE", "UPDATE"], "config": "create-config", "tool": "rec"},
        {"actions": ["CREATE"], "config": "second", "tool": "other"},
    ]}
    write_deployments(hc, [deployment(0, group="component", config=config),
                           deployment(1, group="component", config=config, action="SUSPEND")])
    result = run(run_tool)
    assert result.returncode == 0
    seen = json.loads(hc.path("rec.stdin").read_text())
    assert seen["group"] == "rec" and seen["config"] == "create-config"
    assert hc.path("order").read_text() == "rec\n"
    assert not deployed(hc, dep_id(1) + ".json").exists()  # no config for SUSPEND: nothing written
    assert "no valid script is defined for deploy action SUSPEND" in result.stderr


def test_already_deployed_is_skipped_and_removing_the_marker_reruns(run_tool, hc):
    recording_hook(hc, "rec")
    write_deployments(hc, [deployment(0, group="rec")])
    run(run_tool)
    result = run(run_tool)
    assert hc.path("order").read_text() == "rec\n"
    assert "Skipping config %s, already deployed" % dep_id(0) in result.stderr
    assert "To force-deploy, rm %s" % deployed(hc, dep_id(0) + ".json") in result.stderr
    deployed(hc, dep_id(0) + ".json").unlink()
    run(run_tool)
    assert hc.path("order").read_text() == "rec\nrec\n"


def test_an_empty_marker_counts_as_deployed(run_tool, hc):
    recording_hook(hc, "rec")
    deployed(hc, dep_id(0) + ".json").write_text("")
    write_deployments(hc, [deployment(0, group="rec")])
    run(run_tool)
    assert not hc.path("order").exists()


def test_hooks_run_in_list_order(run_tool, hc):
    for name in ("b", "a", "c"):
        recording_hook(hc, name)
    write_deployments(hc, [deployment(i, group=g) for i, g in enumerate(["c", "a", "b"])])
    run(run_tool)
    assert hc.path("order").read_text() == "c\na\nb\n"


def test_group_sanitising_and_exact_names(run_tool, hc):
    """``Heat::Ungrouped``-style names find the sanitised hook; ``a.b`` and ``ab`` stay apart (§11.34)."""
    recording_hook(hc, "mytool_v2")
    recording_hook(hc, "ab")
    recording_hook(hc, "a.b")
    write_deployments(hc, [deployment(0, group="my::tool_v2"), deployment(1, group="a.b"),
                           deployment(2, group="ab")])
    run(run_tool)
    assert hc.path("order").read_text() == "mytool_v2\na.b\nab\n"


def test_user_hook_executable_wins_over_builtin(run_tool, hc):
    recording_hook(hc, "script")
    write_deployments(hc, [deployment(0)])
    run(run_tool)
    assert hc.path("order").read_text() == "script\n"


def test_builtin_shim_in_hook_dir_runs_builtin(run_tool, hc):
    hook(hc, "script", "#!/bin/sh\nexec heat-config-hook script\n")
    write_deployments(hc, [deployment(0, config="#!/bin/sh\necho via-builtin\n")])
    result = run(run_tool)
    assert "built-in script hook" in result.stderr
    assert json.loads(deployed(hc, dep_id(0) + ".notify.json").read_text())["deploy_stdout"] == "via-builtin\n"


@pytest.mark.parametrize("exit_code,stdout,expected", [
    (0, '  {"deploy_status_code": 0, "out": "v"}\n', {"deploy_status_code": 0, "out": "v"}),
    (3, '{"deploy_status_code": 0}', {"deploy_status_code": 0}),  # the hook's own status wins
    (4, "", {"deploy_stdout": "", "deploy_stderr": "err\n", "deploy_status_code": 4}),
    (0, "not json", {"deploy_stdout": "not json", "deploy_stderr": "err\n", "deploy_status_code": 0}),
    (0, "", {"deploy_stdout": "", "deploy_stderr": "err\n", "deploy_status_code": 0}),  # §11.19: not {}
])
def test_signal_data_from_an_executable_hook(run_tool, hc, exit_code, stdout, expected):
    hook(hc, "h", "#!/bin/sh\nprintf '%%s' '%s'\necho err >&2\nexit %d\n" % (stdout, exit_code))
    write_deployments(hc, [deployment(0, group="h")])
    run(run_tool)
    assert json.loads(deployed(hc, dep_id(0) + ".notify.json").read_text()) == expected


def test_unexecutable_hook_is_signalled_not_lost(run_tool, hc, cloud):
    """SPEC §11.1: the original raises, leaves the marker, never signals."""
    hc.write("hooks/broken", "#!/nonexistent/interpreter\n", 0o755)
    write_deployments(hc, [deployment(0, group="broken", signal=cfn_inputs(cloud))])
    assert run(run_tool).returncode == 0
    (signal,) = cloud.cfn.signals
    assert signal.body["deploy_status_code"] == 126
    assert "cannot execute hook" in signal.body["deploy_stderr"]


def test_os_apply_config_and_ungrouped_are_left_to_oac(run_tool, hc, cloud):
    write_deployments(hc, [deployment(0, group="os-apply-config", signal=cfn_inputs(cloud)),
                           deployment(1, group="Heat::Ungrouped", signal=cfn_inputs(cloud))])
    result = run(run_tool)
    assert result.returncode == 0
    assert not deployed(hc, dep_id(0) + ".json").exists() and not deployed(hc, dep_id(1) + ".json").exists()
    assert cloud.cfn.requests == []


def test_missing_hook_is_signalled_failed_once(run_tool, hc, cloud):
    """SPEC §11.17/§12.6: the original only logs it; Heat waits for its timeout."""
    write_deployments(hc, [deployment(0, group="puppetish", signal=cfn_inputs(cloud))])
    result = run(run_tool)
    assert result.returncode == 0
    (signal,) = cloud.cfn.signals
    assert signal.body["deploy_status_code"] != 0
    assert "puppetish" in signal.body["deploy_stderr"] and str(hc.path("hooks")) in signal.body["deploy_stderr"]
    run(run_tool)
    assert len(cloud.cfn.signals) == 1


@pytest.mark.parametrize("group", ["../../bin/sh", "a/b", "x y", "/abs"])
def test_unsafe_group_is_refused_and_signalled(run_tool, hc, cloud, group):
    write_deployments(hc, [deployment(0, group=group, signal=cfn_inputs(cloud))])
    result = run(run_tool)
    assert result.returncode == 0
    (signal,) = cloud.cfn.signals
    assert signal.body["deploy_status_code"] != 0 and "refused" in signal.body["deploy_stderr"]


@pytest.mark.parametrize("bad_id", ["../evil", "a/b", "", "x\\y", "..", "sp ace"])
def test_unsafe_id_is_refused_never_run_never_signalled(run_tool, hc, cloud, bad_id):
    recording_hook(hc, "rec")
    dep = deployment(0, group="rec", signal=cfn_inputs(cloud))
    dep["id"] = bad_id
    write_deployments(hc, [dep, deployment(1, group="rec")])
    result = run(run_tool)
    assert result.returncode == 0
    assert "Refusing deployment" in result.stderr
    assert hc.path("order").read_text() == "rec\n"  # only the valid one ran
    assert cloud.cfn.requests == []
    assert sorted(os.listdir(hc.path("deployed"))) == sorted(
        ["journal", dep_id(1) + ".json", dep_id(1) + ".notify.json"])
    status = run_tool("heat-config", ["status", "--json"])
    rows = json.loads(status.stdout)["deployments"]
    assert rows[0]["id"] == bad_id and rows[0]["state"] == "failed" and "refused" in rows[0]["error"]


def test_one_broken_deployment_does_not_stop_the_others(run_tool, hc):
    recording_hook(hc, "rec")
    broken = deployment(0, group="rec")
    broken["inputs"] = "not a list"
    write_deployments(hc, [broken, "not an object", deployment(1, group="rec")])
    assert run(run_tool).returncode == 0
    assert deployed(hc, dep_id(1) + ".json").exists()


# -- notifier program (§6.6 step 11, §12.2) -------------------------------------------------------
NOTIFIER = """#!/bin/sh
echo "$@" >> "{out}/notify.argv"
cat >> "{out}/notify.stdin"
echo >> "{out}/notify.stdin"
exit $(cat "{out}/notify.exit" 2>/dev/null || echo 0)
"""


def test_notify_program_gets_marker_path_and_signal_data_even_for_no_signal(run_tool, hc):
    notifier = hc.write("bin/notifier", NOTIFIER.format(out=hc.root), 0o755)
    write_deployments(hc, [deployment(0, config="#!/bin/sh\necho hi\n")])
    assert run(run_tool, env={"HEAT_CONFIG_NOTIFY": str(notifier)}).returncode == 0
    assert hc.path("notify.argv").read_text() == "%s\n" % deployed(hc, dep_id(0) + ".json")
    data = json.loads(hc.path("notify.stdin").read_text())
    assert data == {"deploy_stdout": "hi\n", "deploy_stderr": "", "deploy_status_code": 0}
    assert journal(hc, dep_id(0))["signal"] == "sent"


def test_notify_program_failure_keeps_signal_pending_until_it_succeeds(run_tool, hc):
    notifier = hc.write("bin/notifier", NOTIFIER.format(out=hc.root), 0o755)
    hc.path("notify.exit").write_text("75")
    env = {"HEAT_CONFIG_NOTIFY": str(notifier), "HEAT_CONFIG_SIGNAL_RETRY_S": "0"}
    write_deployments(hc, [deployment(0)])
    result = run(run_tool, env=env)
    assert "Error running %s" % notifier in result.stderr
    assert journal(hc, dep_id(0))["signal"] == "pending"
    hc.path("notify.exit").write_text("0")
    run(run_tool, env=env)  # nothing new: the outbox retries with the same program, same argv
    assert hc.path("notify.argv").read_text().splitlines() == [str(deployed(hc, dep_id(0) + ".json"))] * 2
    assert journal(hc, dep_id(0))["signal"] == "sent"
    run(run_tool, env=env)
    assert len(hc.path("notify.argv").read_text().splitlines()) == 2  # never again once accepted


def test_a_notify_program_past_its_time_limit_is_stopped_and_the_signal_stays_pending(run_tool, hc):
    """The limit is the retry budget, one token request waited for to its end (300 s: Keystone issues a token
    whether or not it is still waited for) and one signal request; a program past it is stopped and its
    signal kept for the next run. Slow by design: the token wait is not shortened for tests."""
    notifier = hc.write("bin/notifier", "#!/bin/sh\nexec sleep 100000\n", 0o755)
    env = {"HEAT_CONFIG_NOTIFY": str(notifier), "HEAT_CONFIG_SIGNAL_RETRY_S": "0",
           "HEAT_CONFIG_SIGNAL_TIMEOUT_S": "0.5"}
    write_deployments(hc, [deployment(0)])
    started = time.monotonic()
    result = run_tool("heat-config", env=env, timeout=420)
    assert 300.5 <= time.monotonic() - started < 400
    assert "Error running %s" % notifier in result.stderr
    assert journal(hc, dep_id(0))["signal"] == "pending"


def test_notify_program_from_path(run_tool, hc):
    hc.write("bin/my-notify", NOTIFIER.format(out=hc.root), 0o755)
    env = {"HEAT_CONFIG_NOTIFY": "my-notify", "PATH": "%s:%s" % (hc.path("bin"), hc.env["PATH"])}
    write_deployments(hc, [deployment(0)])
    run(run_tool, env=env)
    assert hc.path("notify.argv").exists()


def test_our_notifier_as_program_signals_the_same_bytes(run_tool, hc, cloud):
    write_deployments(hc, [deployment(0, signal=cfn_inputs(cloud))])
    assert run(run_tool, env={"HEAT_CONFIG_NOTIFY": "heat-config-notify"}).returncode == 0
    assert [s.body for s in cloud.cfn.signals] == [
        {"deploy_stdout": "hello\n", "deploy_stderr": "", "deploy_status_code": 0}]
    assert journal(hc, dep_id(0))["signal"] == "sent"


# -- cleanup and secrets (§11.11, §11.13, §12.10, §12.13.15) --------------------------------------
def test_gone_deployments_lose_their_files_and_credentials_but_never_rerun(run_tool, hc, cloud):
    from tests.support.deployments import keystone_inputs

    dep = deployment(0, config="#!/bin/sh\necho x > $heat_outputs_path.o\n", outputs=["o"],
                     signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    keep = deployment(1)
    write_deployments(hc, [dep, keep])
    run(run_tool)
    work, outs = hc.path("lib", "heat-config-script"), hc.path("run", "heat-config-script")
    assert (work / dep["id"]).exists() and (outs / (dep["id"] + ".o")).exists()
    assert PLANTED_SECRETS[0] in deployed(hc, dep["id"] + ".json").read_text()

    write_deployments(hc, [keep])
    run(run_tool)
    assert not (work / dep["id"]).exists() and not (outs / (dep["id"] + ".o")).exists()
    assert (work / keep["id"]).exists()  # kept while in the metadata
    assert PLANTED_SECRETS[0] not in deployed(hc, dep["id"] + ".json").read_text()
    assert not deployed(hc, dep["id"] + ".notify.json").exists()
    assert not deployed(hc, "journal", dep["id"] + ".json").exists()

    write_deployments(hc, [dep, keep])
    result = run(run_tool)
    assert "Skipping config %s, already deployed" % dep["id"] in result.stderr
    assert len(cloud.heat.signals) == 1


def test_no_secret_in_logs_or_readable_files(run_tool, hc, cloud):
    from tests.support.deployments import keystone_inputs

    dep = deployment(0, config="#!/bin/sh\necho ok\n", signal=keystone_inputs(cloud, "HEAT_SIGNAL"), inputs=[
        {"name": "db_password", "type": "String", "value": PLANTED_SECRETS[1]},
        {"name": "api_token", "type": "String", "value": PLANTED_SECRETS[3]},
    ])
    cfn = deployment(1, signal=cfn_inputs(cloud, "deploy_1"))
    write_deployments(hc, [dep, cfn])
    result = run(run_tool)  # run_tool asserts stderr is clean of planted secrets
    signature = cloud.cfn.signals[0].params["Signature"]
    assert signature not in result.stderr
    status = run_tool("heat-config", ["status", "--json"])
    for secret in PLANTED_SECRETS + (signature,):
        assert secret not in status.stdout
        for s in cloud.heat.signals:
            assert secret not in json.dumps(s.body)
    assert_no_secret_on_disk_outside_state(hc)


@pytest.mark.parametrize("printed", ["password", "query"])
def test_status_error_column_shows_no_part_of_a_secret_that_straddles_its_cut(run_tool, hc, cloud, printed):
    """Issue 12 defect 13: the last stderr line was cut to 300 characters before being redacted, so a
    secret that straddled the cut showed its first characters. The secret starts at character 294."""
    from tests.support.deployments import keystone_inputs

    signal = cfn_inputs(cloud) + [i for i in keystone_inputs(cloud, "HEAT_SIGNAL")
                                  if i["name"] != "deploy_signal_transport"]
    shown = {"password": '"$deploy_password"', "query": '"${deploy_signal_id#*\\?}"'}[printed]
    config = "#!/bin/sh\necho first line >&2\necho %s%s tail >&2\nexit 3\n" % ("x" * 294, shown)
    write_deployments(hc, [deployment(0, config=config, signal=signal)])
    assert run(run_tool).returncode == 0
    url = cfn_inputs(cloud)[1]["value"]
    query = url.split("?", 1)[1]
    secrets = [PLANTED_SECRETS[0], query, cloud.cfn.signals[0].params["Signature"]]
    assert journal(hc, dep_id(0))["signal_data"]["deploy_stderr"].splitlines()[-1].startswith("x" * 294)
    for args in (["status"], ["status", "--json"]):
        out = run_tool("heat-config", args).stdout
        assert "x" * 200 in out  # the error column is there, cut
        for secret in secrets:
            for n in range(4, len(secret) + 1):
                assert secret[:n] not in out, "%r of a secret in %s" % (secret[:n], " ".join(args))


def test_unusable_deployed_dir_is_one_line_exit_1(run_tool, hc):
    blocker = hc.write("lib/not-a-dir", "")
    write_deployments(hc, [deployment(0)])
    result = run(run_tool, env={"HEAT_CONFIG_DEPLOYED": str(blocker / "deployed")})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and str(blocker) in result.stderr


def test_refusal_seen_by_our_notifier_program_is_recorded_in_the_journal(run_tool, hc, cloud):
    inputs = cfn_inputs(cloud)
    inputs[1]["value"] = inputs[1]["value"].replace("AWSAccessKeyId=", "AWSAccessKeyId=unknown")
    write_deployments(hc, [deployment(0, signal=inputs)])
    env = {"HEAT_CONFIG_NOTIFY": "heat-config-notify"}
    assert run(run_tool, env=env).returncode == 0
    record = journal(hc, dep_id(0))
    assert record["signal"] == "refused" and "403" in record["signal_error"]
    run(run_tool, env=env)
    assert len(cloud.cfn.received("POST")) == 1  # refused for good: never sent again


def test_log_lines_have_the_originals_format(run_tool, hc):
    """SPEC §6.12: ``[<asctime>] (heat-config) [<LEVEL>] <message>`` on stderr, hook path logged before it runs."""
    import re

    recording_hook(hc, "rec")
    write_deployments(hc, [deployment(0, group="rec")])
    result = run(run_tool)
    lines = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert lines and all(re.match(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] \(heat-config\) \[(DEBUG|INFO|WARNING|ERROR)\] ",
                                  line) for line in lines), lines
    assert "Running %s < %s" % (hc.path("hooks", "rec"), deployed(hc, dep_id(0) + ".json")) in result.stderr
    assert result.stdout == ""


# -- heat-config-hook (the protocol by hand) ------------------------------------------------------
def test_hook_command_runs_builtin_and_executable_hooks(run_tool, hc):
    dep = deployment(0, config="#!/bin/sh\necho by-hand\n")
    out = run_tool("heat-config", ["hook", "script"], input=json.dumps(dep))
    assert out.returncode == 0 and json.loads(out.stdout)["deploy_stdout"] == "by-hand\n"
    hook(hc, "mine", "#!/bin/sh\ncat >/dev/null\necho '{\"deploy_status_code\": 0, \"x\": 1}'\n")
    out = run_tool("heat-config-hook", ["mine"], input=json.dumps(deployment(1, group="mine")))
    assert out.returncode == 0 and json.loads(out.stdout) == {"deploy_status_code": 0, "x": 1}
    out = run_tool("heat-config-hook", ["nosuch"], input="{}")
    assert out.returncode == 1 and "no hook for group nosuch" in out.stderr and str(hc.path("hooks")) in out.stderr

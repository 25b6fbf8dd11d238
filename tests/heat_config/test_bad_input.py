"""Deployments of odd shape, and deployments files that cannot be read (issue 12 defects 8–11; SPEC §12.7, §12.13.8).

Every case runs the real commands (dispatcher, ``status``, ``heat-config-hook``,
``heat-config-notify``, ``heat-config run``, ``heat-config-rebuild-deployed``) and
asserts one line naming the deployment (its id, or its position in the file) and the
field, no traceback, and that the other deployments of the file still run.
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

import pytest

from agent_common.deployment_contract import ID_FILE_NAMES, ID_MAX_LEN
from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, journal, write_deployments
from tests.support.sandbox import BIN_DIR

GOOD = dep_id(9)


def good() -> Dict[str, Any]:
    """The deployment that must still run beside the odd one."""
    return deployment(9, config="#!/bin/sh\necho fine\n")


def error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if "[ERROR]" in line]


def assert_one_line(stderr: str, *words: str) -> str:
    """Exactly one error line, holding every word; no traceback."""
    assert "Traceback" not in stderr, stderr
    (line,) = error_lines(stderr)
    for word in words:
        assert word in line, (word, line)
    return line


def assert_good_ran(sandbox) -> None:
    record = journal(sandbox, GOOD)
    assert record["step"] in ("finished", "signalled") and (record["status_code"], record["failed"]) == (0, False)


def status_rows(run_tool) -> Dict[Any, Dict[str, Any]]:
    result = run_tool("heat-config", ["status", "--json"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return {row["id"]: row for row in json.loads(result.stdout)["deployments"]}


def component(actions: Any) -> Dict[str, Any]:
    return {"configs": [{"actions": actions, "config": "#!/bin/sh\ntrue\n", "tool": "script"}]}


#: (what to change in the deployment, the field the message must name)
ODD_FIELDS = [
    ({"inputs": 5}, "inputs must be a list, not a number"),
    ({"inputs": True}, "inputs must be a list, not a boolean"),
    ({"inputs": 1.5}, "inputs must be a list, not a number"),
    ({"inputs": "deploy_action"}, "inputs must be a list, not a string"),
    ({"inputs": [5]}, "inputs[0] must be an object, not a number"),
    ({"inputs": [{"value": "x"}]}, "inputs[0].name must be a string, not null"),
    ({"group": {"a": 1}}, "group must be a string, not an object"),
    ({"group": ["script"]}, "group must be a string, not a list"),
    ({"outputs": 5}, "outputs must be a list, not a number"),
    ({"outputs": ["result"]}, "outputs[0] must be an object, not a string"),
    ({"options": 5}, "options must be an object, not a number"),
    ({"group": "component", "config": component("CREATE")}, "config.configs[0].actions must be a list"),
    ({"group": "component", "config": component(5)}, "config.configs[0].actions must be a list"),
    ({"group": "component", "config": {"configs": 5}}, "config.configs must be a list"),
]


# -- defect 8: fields of the wrong type ---------------------------------------------------------
@pytest.mark.parametrize("change,words", ODD_FIELDS, ids=[w for _, w in ODD_FIELDS])
def test_a_field_of_the_wrong_type_is_one_line_and_the_others_run(run_tool, hc, change, words):
    odd = dict(deployment(0), **change)
    write_deployments(hc, [odd, good()])
    result = run_tool("heat-config")
    assert result.returncode == 0
    assert_one_line(result.stderr, "deployment %s: %s" % (dep_id(0), words))
    assert_good_ran(hc)
    record = journal(hc, dep_id(0))
    assert (record["step"], record["failed"]) == ("finished", True) and words in record["error"]
    assert not hc.path("lib", "heat-config-script", dep_id(0)).exists()  # never run

    rows = status_rows(run_tool)
    assert rows[dep_id(0)]["state"] == "failed" and words in rows[dep_id(0)]["error"]
    assert rows[GOOD]["state"] == "succeeded"
    table = run_tool("heat-config", ["status"])
    assert table.returncode == 0 and words in table.stdout and "Traceback" not in table.stderr


@pytest.mark.parametrize("change,words", ODD_FIELDS[:3] + ODD_FIELDS[6:8], ids=[w for _, w in ODD_FIELDS[:3] + ODD_FIELDS[6:8]])
def test_status_lists_odd_deployments_before_the_dispatcher_saw_them(run_tool, hc, change, words):
    write_deployments(hc, [dict(deployment(0), **change), good()])
    rows = status_rows(run_tool)
    assert rows[dep_id(0)]["state"] == "pending" and rows[GOOD]["state"] == "pending"
    assert run_tool("heat-config", ["status"]).returncode == 0


def test_a_usable_id_with_an_odd_field_is_signalled_failed_naming_the_field(run_tool, hc, cloud):
    odd = dict(deployment(0, signal=cfn_inputs(cloud, "deploy_0")), outputs=5)
    write_deployments(hc, [odd, deployment(9, signal=cfn_inputs(cloud, "deploy_9"))])
    assert run_tool("heat-config").returncode == 0
    bodies = {s.arn.rsplit("/", 1)[-1]: s.body for s in cloud.cfn.signals}
    assert set(bodies) == {"deploy_0", "deploy_9"}
    assert bodies["deploy_0"]["deploy_status_code"] == 1
    assert bodies["deploy_0"]["deploy_stderr"] == "deployment %s: outputs must be a list, not a number\n" % dep_id(0)
    assert bodies["deploy_9"]["deploy_status_code"] == 0


def test_inputs_of_the_wrong_shape_give_no_signal_route(run_tool, hc, cloud):
    """A signal URL is never taken from an inputs list that could not be read whole."""
    odd = deployment(0, signal=cfn_inputs(cloud, "deploy_0"))
    odd["inputs"].append(7)
    write_deployments(hc, [odd, deployment(9, signal=cfn_inputs(cloud, "deploy_9"))])
    result = run_tool("heat-config")
    assert_one_line(result.stderr, "deployment %s: inputs[%d] must be an object" % (dep_id(0), len(odd["inputs"]) - 1))
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_9"]
    assert status_rows(run_tool)[dep_id(0)]["signal"] == "none"


@pytest.mark.parametrize("bad_id", [".", "a" * (ID_MAX_LEN + 1), "x.notify", "../x", 5, None])
def test_an_unusable_id_is_named_by_position_never_signalled_and_listed(run_tool, hc, cloud, bad_id):
    odd = dict(deployment(0, signal=cfn_inputs(cloud, "deploy_0")), id=bad_id)
    write_deployments(hc, [odd, deployment(9, signal=cfn_inputs(cloud, "deploy_9"))])
    result = run_tool("heat-config")
    assert result.returncode == 0
    assert_one_line(result.stderr, "deployment #1 in %s: id " % hc.path("run", "heat-config"))
    assert_good_ran(hc)
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_9"]
    assert sorted(os.listdir(deployed(hc))) == sorted(["journal", GOOD + ".json", GOOD + ".notify.json"])
    assert "Traceback" not in run_tool("heat-config").stderr  # and every later run too
    rows = status_rows(run_tool)
    assert rows[bad_id]["state"] == "failed" and rows[bad_id]["error"].startswith("refused: id ")
    assert rows[bad_id]["signal"] == "none"


def test_a_deployment_that_is_not_an_object_is_named_by_position(run_tool, hc):
    write_deployments(hc, [good(), ["not", "a", "deployment"]])
    result = run_tool("heat-config")
    assert_one_line(result.stderr, "deployment #2 in %s: not a JSON object but a list" % hc.path("run", "heat-config"))
    assert_good_ran(hc)
    rows = status_rows(run_tool)
    assert rows[None]["error"] == "refused: not a JSON object but a list"


def test_the_longest_id_that_names_every_state_file_runs_and_is_signalled(run_tool, hc, cloud):
    long_id = "L" * ID_MAX_LEN
    write_deployments(hc, [dict(deployment(0, signal=cfn_inputs(cloud, "deploy_0")), id=long_id)])
    result = run_tool("heat-config")
    assert result.returncode == 0 and not error_lines(result.stderr), result.stderr
    (signal,) = cloud.cfn.signals
    assert signal.body["deploy_status_code"] == 0
    assert journal(hc, long_id)["signal"] == "sent"


def test_the_id_limit_covers_the_file_names_the_code_makes():
    """ID_FILE_NAMES is what ID_MAX_LEN is computed from: the suffixes the journal and hooks use are in it
    (the longest, puppet's log name, is proven by tests/hooks/test_puppet.py with a real run)."""
    from heat_config import journal
    from hooks import ansible

    names = {name for group in ID_FILE_NAMES.values() for name in group}
    assert {"{}" + journal.OPEN_SUFFIX, "{}" + ansible.PLAYBOOK_SUFFIX, "{}" + ansible.VARIABLES_SUFFIX} <= names
    assert ID_MAX_LEN == 255 - len("2024-03-05-09-12-44Z--stdout.log")


def test_x_and_x_notify_no_longer_share_a_state_file(run_tool, hc):
    write_deployments(hc, [dict(deployment(0), id="x"), dict(deployment(1), id="x.notify")])
    result = run_tool("heat-config")
    assert_one_line(result.stderr, "deployment #2 in", "ends with '.notify'", "'x'")
    assert journal(hc, "x")["status_code"] == 0
    rows = status_rows(run_tool)
    assert rows["x"]["state"] == "succeeded" and rows["x.notify"]["state"] == "failed"


def test_rebuild_deployed_skips_ids_that_cannot_name_a_state_file(run_tool, hc):
    long_id = "a" * (ID_MAX_LEN + 30)
    metadata = {"deployments": [dict(deployment(0), id=long_id), dict(deployment(1), group={"a": 1}),
                                dict(deployment(2), id="x.notify"), deployment(3)]}
    meta = hc.write("cache/heat.json", json.dumps(metadata))
    result = run_tool("heat-config-rebuild-deployed", env={"OS_CONFIG_FILES": str(meta)})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "is %d characters long" % len(long_id) in result.stderr and "ends with '.notify'" in result.stderr
    assert sorted(os.listdir(deployed(hc))) == sorted([dep_id(1) + ".json", dep_id(3) + ".json"])


def test_script_hook_refuses_id_dot(run_tool, hc):
    """Issue 12 defect 8: id '.' made the script hook rename its script onto the working dir."""
    write_deployments(hc, [dict(deployment(0), id="."), good()])
    result = run_tool("heat-config")
    assert_one_line(result.stderr, "deployment #1 in", "id is '.'")
    assert_good_ran(hc)


def test_a_script_working_dir_that_is_a_file_is_one_line_naming_the_variable(run_tool, hc):
    working = hc.write("lib/not-a-dir", "")
    write_deployments(hc, [deployment(0)])
    result = run_tool("heat-config", env={"HEAT_SCRIPT_WORKING": str(working)})
    line = assert_one_line(result.stderr, "HEAT_SCRIPT_WORKING=%s cannot be used as a directory" % working)
    assert "not a directory" in line
    record = journal(hc, dep_id(0))
    assert record["failed"] and "HEAT_SCRIPT_WORKING" in record["error"]


# -- the same rules in every other entry point ----------------------------------------------------
def run_stdin(name: str, args: List[str], data: bytes, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """A command with raw bytes on stdin (run_tool sends text)."""
    return subprocess.run([str(BIN_DIR / name), *args], input=data, env=env, capture_output=True, timeout=60)


@pytest.mark.parametrize("change,words", ODD_FIELDS, ids=[w for _, w in ODD_FIELDS])
def test_heat_config_hook_refuses_an_odd_deployment_with_a_failed_result(run_tool, hc, change, words):
    odd = dict(deployment(0), **change)
    result = run_tool("heat-config-hook", ["script"], input=json.dumps(odd))
    assert result.returncode == 0
    assert_one_line(result.stderr, "deployment %s: %s" % (dep_id(0), words))
    out = json.loads(result.stdout)
    assert out["deploy_status_code"] == 1 and words in out["deploy_stderr"]


def test_heat_config_hook_refuses_for_an_executable_hook_too(run_tool, hc):
    hc.write("hooks/mine", "#!/bin/sh\ntouch %s\n" % hc.path("ran"), 0o755)
    result = run_tool("heat-config-hook", ["mine"], input=json.dumps(dict(deployment(0), inputs=5)))
    assert result.returncode == 0
    assert_one_line(result.stderr, "inputs must be a list")
    assert json.loads(result.stdout)["deploy_status_code"] == 1
    assert not hc.path("ran").exists()


DEEP = b"[" * 100000 + b"]" * 100000
#: Short test ids: pytest 8 (the newest for Python 3.9) would put all of DEEP in the id, and the id in the
#: environment of every child (PYTEST_CURRENT_TEST), which is then too long to start one (E2BIG).
ID_WORDS = ["not-utf8", "too-deep"]


@pytest.mark.parametrize("data,words", [(b'{"id": "\xff"}', "stdin: not UTF-8 text"),
                                        (DEEP, "stdin: JSON nested too deeply")], ids=ID_WORDS)
def test_heat_config_hook_stdin_that_is_not_json_text_is_one_line(hc, data, words):
    result = run_stdin("heat-config-hook", ["script"], data, hc.env)
    assert result.returncode == 1
    assert_one_line(result.stderr.decode(), words)


def test_heat_config_notify_refuses_inputs_of_the_wrong_shape(run_tool, hc):
    path = hc.write("deployed/%s.json" % dep_id(0), json.dumps(dict(deployment(0), inputs=5)))
    result = run_tool("heat-config-notify", [str(path)], input="{}")
    assert result.returncode == 1
    assert_one_line(result.stderr, str(path), "deployment %s: inputs must be a list, not a number" % dep_id(0))


@pytest.mark.parametrize("content,words", [(b'{"id": "\xff"}', "not UTF-8 text"), (DEEP, "JSON nested too deeply")],
                         ids=ID_WORDS)
def test_heat_config_notify_deployment_file_that_is_not_json_text_is_one_line(hc, content, words):
    path = hc.path("deployed", "x.json")
    path.write_bytes(content)
    result = run_stdin("heat-config-notify", [str(path)], b"{}", hc.env)
    assert result.returncode == 1
    assert_one_line(result.stderr.decode(), str(path), words)


@pytest.mark.parametrize("data,words", [(b'{"a": "\xff"}', "not UTF-8 text"), (DEEP, "JSON nested too deeply")],
                         ids=ID_WORDS)
def test_heat_config_notify_signal_data_that_is_not_json_text_is_one_warning(hc, data, words):
    path = hc.write("deployed/%s.json" % dep_id(0), json.dumps(deployment(0)))
    result = run_stdin("heat-config-notify", [str(path)], data, hc.env)
    stderr = result.stderr.decode()
    assert result.returncode == 0 and "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if "[WARNING]" in line]
    assert "No valid json found on stdin" in line and words in line


@pytest.mark.parametrize("change,words", ODD_FIELDS, ids=[w for _, w in ODD_FIELDS])
def test_heat_config_run_refuses_an_odd_file_in_one_line(run_tool, hc, change, words):
    path = hc.write("odd.json", json.dumps(dict(deployment(0), **change)))
    result = run_tool("heat-config", ["run", str(path)])
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("heat-config run: %s: %s" % (path, words)), line
    assert not hc.path("lib", "heat-config-script", dep_id(0)).exists()


@pytest.mark.parametrize("content,words", [(b"group: \xff\n", "not UTF-8 text"), (DEEP, "nested too deeply")],
                         ids=ID_WORDS)
def test_heat_config_run_file_that_is_not_text_is_one_line(run_tool, hc, content, words):
    path = hc.path("odd.yaml")
    path.write_bytes(content)
    result = run_tool("heat-config", ["run", str(path)])
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr and words in result.stderr


# -- defect 9 and 11: a deployments file that cannot be read ----------------------------------------
UNREADABLE = [(b"[\xff]", "not UTF-8 text"), (DEEP, "JSON nested too deeply"), (b"{broken", "not valid JSON")]


@pytest.mark.parametrize("content,words", UNREADABLE, ids=[w for _, w in UNREADABLE])
def test_a_deployments_file_that_is_not_json_text_is_one_line_everywhere(run_tool, hc, content, words):
    path = hc.path("run", "heat-config")
    path.write_bytes(content)
    for args in ([], ["status"], ["status", "--json"], ["status", "--wait", "--timeout", "30"]):
        result = run_tool("heat-config", args)
        assert result.returncode == 1, args
        assert result.stdout == "" and "Traceback" not in result.stderr, args
        (line,) = result.stderr.strip().splitlines()
        assert str(path) in line and words in line, args


def test_a_fifo_as_the_deployments_file_is_one_line_not_a_hang(run_tool, hc):
    path = hc.path("run", "heat-config")
    os.mkfifo(path, 0o600)
    for args in ([], ["status"], ["status", "--wait", "--timeout", "30"]):
        result = run_tool("heat-config", args, timeout=20)
        assert result.returncode == 1, args
        (line,) = result.stderr.strip().splitlines()
        assert str(path) in line and "not a regular file" in line, args


# -- defect 11: numbers that are not numbers --------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
def test_status_wait_timeout_must_be_a_finite_number_of_seconds(run_tool, hc, value):
    write_deployments(hc, [deployment(0)])  # pending: a --wait that took the value would block
    result = run_tool("heat-config", ["status", "--wait", "--timeout=" + value], timeout=20)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == "heat-config status: --timeout must be a finite number of seconds >= 0, not %s" % value


@pytest.mark.parametrize("value", ["abc", "nan", "-1", "inf"])
def test_a_hook_timeout_variable_that_is_not_seconds_is_warned_about_and_means_no_limit(run_tool, hc, value):
    write_deployments(hc, [deployment(0, config="#!/bin/sh\nsleep 1\necho done\n")])
    result = run_tool("heat-config", env={"HEAT_CONFIG_HOOK_TIMEOUT": value})
    assert result.returncode == 0 and "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "[WARNING]" in line and "HEAT_CONFIG_HOOK_TIMEOUT" in line]
    assert "Ignoring HEAT_CONFIG_HOOK_TIMEOUT=%r: not a number of seconds >= 0" % value in line
    record = journal(hc, dep_id(0))
    assert (record["status_code"], record["failed"]) == (0, False)
    assert json.loads(deployed(hc, dep_id(0) + ".notify.json").read_text())["deploy_stdout"] == "done\n"

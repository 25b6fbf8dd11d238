"""The cfn-init hook (SPEC §8.12), run as ``heat-config-hook cfn-init``.

heat-cfntools' cfn-init cannot run here: it logs to /var/log/cfn-init.log, reads
/var/lib/heat-cfntools/cfn-metadata-server and rewrites
/var/cache/heat-cfntools/last_metadata, none of which an argument or variable
redirects, and the hook runs it without arguments.  So the tests use a small
cfn-init that does what the real one does with the hook's file: it takes no
arguments, reads ``last_metadata`` from the directory the hook wrote it to
(``$HEAT_CFN_INIT_LAST_METADATA_DIR``, inherited from the hook), and applies the
``files`` and ``commands`` of the Init ``config`` section, failing with status 1
when a command fails.
"""
from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from tests.support.sandbox import hook_json

FAKE_CFN_INIT = r'''#!%(python)s
import json, os, subprocess, sys
if len(sys.argv) > 1:
    sys.exit("cfn-init: this test expects no arguments, got %%r" %% sys.argv[1:])
with open(os.path.join(os.environ["HEAT_CFN_INIT_LAST_METADATA_DIR"], "last_metadata")) as f:
    init = json.load(f)["AWS::CloudFormation::Init"]
with open(%(runs)r, "a") as f:
    f.write("ran\n")
config = init.get("config", {})
for path, spec in sorted(config.get("files", {}).items()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = spec["content"]
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content, indent=4))
    if "mode" in spec:
        os.chmod(path, int(spec["mode"], 8))
    print("wrote %%s" %% path)
for name, spec in sorted(config.get("commands", {}).items()):
    if subprocess.call(spec["command"], shell=True, cwd=spec.get("cwd")):
        sys.stderr.write("Error processing metadata: command %%s failed\n" %% name)
        sys.exit(1)
    print("ran command %%s" %% name)
'''


@pytest.fixture
def cfn_env(sandbox):
    runs = sandbox.path("home", "cfn-init-runs")
    fake = sandbox.write("home/bin/cfn-init", FAKE_CFN_INIT % {"python": sys.executable, "runs": str(runs)}, mode=0o755)
    return {
        "HEAT_CFN_INIT_LAST_METADATA_DIR": str(sandbox.path("cache", "heat-cfntools")),
        "HEAT_CFN_INIT_CMD": str(fake),
    }


def deployment(config, options=None):
    dep = {"id": "4e1c5d2e-aaaa-4bbb-8ccc-000000000001", "name": "init", "group": "cfn-init",
           "inputs": [], "outputs": [], "options": options or {}}
    if config is not None:
        dep["config"] = config
    return dep


def run_hook(run_tool, env, config, options=None):
    out, proc = hook_json(run_tool, "cfn-init", deployment(config, options), env)
    assert "Traceback" not in proc.stderr
    return out


def runs(sandbox):
    path = sandbox.path("home", "cfn-init-runs")
    return len(path.read_text().splitlines()) if path.exists() else 0


def init_config(sandbox):
    target = sandbox.path("home", "app", "app.conf")
    return target, {"config": {
        "files": {str(target): {"content": "port=8080\n", "mode": "000640"},
                  str(sandbox.path("home", "app", "data.json")): {"content": {"a": [1]}}},
        "commands": {"01_check": {"command": "grep -q 8080 app.conf", "cwd": str(target.parent)}},
    }}


def test_object_config_is_written_as_last_metadata_and_applied_by_cfn_init(run_tool, sandbox, cfn_env):
    target, config = init_config(sandbox)
    out = run_hook(run_tool, cfn_env, config)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert out["deploy_stdout"] == "wrote %s\nwrote %s\nran command 01_check\n" % (
        sandbox.path("home", "app", "app.conf"), sandbox.path("home", "app", "data.json"))
    assert set(out) == {"deploy_stdout", "deploy_stderr", "deploy_status_code"}
    assert target.read_text() == "port=8080\n" and stat.S_IMODE(target.stat().st_mode) == 0o640
    metadata = sandbox.path("cache", "heat-cfntools", "last_metadata")
    assert metadata.read_text() == json.dumps({"AWS::CloudFormation::Init": config})  # the original's layout
    assert stat.S_IMODE(metadata.stat().st_mode) == 0o600  # the original's 0700: data that may hold secrets
    assert stat.S_IMODE(metadata.parent.stat().st_mode) == 0o700
    assert os.listdir(metadata.parent) == ["last_metadata"]


def test_json_string_config_is_parsed_and_a_stale_longer_file_replaced(run_tool, sandbox, cfn_env):
    sandbox.write("cache/heat-cfntools/last_metadata", json.dumps({"old": "x" * 5000}))
    target, config = init_config(sandbox)
    out = run_hook(run_tool, cfn_env, json.dumps(config))
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert target.read_text() == "port=8080\n"
    assert json.loads(sandbox.path("cache", "heat-cfntools", "last_metadata").read_text()) == {
        "AWS::CloudFormation::Init": config}


@pytest.mark.parametrize("config", [None, "", "  "])
def test_no_config_is_an_empty_init_section(run_tool, sandbox, cfn_env, config):
    out = run_hook(run_tool, cfn_env, config)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert sandbox.path("cache", "heat-cfntools", "last_metadata").read_text() == '{"AWS::CloudFormation::Init": {}}'
    assert runs(sandbox) == 1


def test_a_failing_cfn_init_gives_its_status_and_stderr(run_tool, sandbox, cfn_env):
    config = {"config": {"commands": {"01_fail": {"command": "exit 3"}}}}
    out = run_hook(run_tool, cfn_env, config)
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"] == "Error processing metadata: command 01_fail failed\n"


@pytest.mark.parametrize("config, reason", [
    ('{"config": {"files": ', "config is not valid JSON: Expecting value: line 1 column 22 (char 21)"),
    ('["a list"]', "config must be an AWS::CloudFormation::Init object, not list"),
    (42, "config must be an AWS::CloudFormation::Init object, not int"),
])
def test_a_config_that_is_not_an_object_fails_naming_config(run_tool, sandbox, cfn_env, config, reason):
    out = run_hook(run_tool, cfn_env, config)
    assert out == {"deploy_stdout": "", "deploy_stderr": "refused: %s\n" % reason, "deploy_status_code": 1}
    assert runs(sandbox) == 0
    assert not sandbox.path("cache", "heat-cfntools", "last_metadata").exists()


def test_missing_cfn_init_is_a_failure_naming_the_command_and_variable(run_tool, sandbox, cfn_env):
    missing = str(sandbox.path("no-such-cfn-init"))
    out = run_hook(run_tool, dict(cfn_env, HEAT_CFN_INIT_CMD=missing), {})
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"] == ("%s cannot be run: not installed (install heat-cfntools, or set "
                                    "HEAT_CFN_INIT_CMD)\n" % missing)


def test_the_hook_timeout_stops_cfn_init(run_tool, sandbox, cfn_env):
    out = run_hook(run_tool, cfn_env, {"config": {"commands": {"01_hang": {"command": "sleep 30"}}}},
                   options={"timeout": 1})
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].endswith("timed out after 1 seconds\n")

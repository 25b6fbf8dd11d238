"""The salt hook (SPEC §8.9) run through ``heat-config-hook salt`` with a real Salt.

Salt comes from PyPI into its own cached venv (bench/.venv-salt, git-ignored,
built once and shared by the session); every path Salt uses (root_dir, cachedir,
pki_dir, sock_dir, log_file) is redirected into the test's sandbox by the minion
config that SALT_MINION_CONFIG names.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess

import pytest
import yaml

from hooks import salt
from hooks.toolkit.context import HookContext
from tests.support.originals import REPO, ensure_originals
from tests.support.sandbox import PLANTED_SECRETS, hook_json

DEP_ID = "5d2e8f10-4a6b-4c7d-8e9f-0a1b2c3d4e5f"
SALT_REQUIREMENT = "salt==3008.4"
SALT_VENV = REPO / "bench" / ".venv-salt"

#: Runs the real salt-call after recording its argv and the private config dir the hook made.
RECORDING_SALT_CALL = r'''#!/bin/sh
python3 - "$@" <<'EOF'
import json, os, stat, sys
config_dir = [a for a in sys.argv[1:] if a.startswith("--config-dir=")][0].split("=", 1)[1]
files = {n: {"mode": stat.S_IMODE(os.stat(os.path.join(config_dir, n)).st_mode),
             "text": open(os.path.join(config_dir, n)).read()} for n in os.listdir(config_dir)}
json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "config_dir": config_dir,
           "dir_mode": stat.S_IMODE(os.stat(config_dir).st_mode), "files": files},
          open(os.environ["SALT_RECORD"], "w"))
EOF
"$REAL_SALT_CALL" "$@"
status=$?
exit ${FORCE_STATUS:-$status}
'''


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=10).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def salt_call():
    """The real salt-call, installed once into bench/.venv-salt; the tests skip only when PyPI cannot be reached."""
    try:
        bin_dir = ensure_originals([SALT_REQUIREMENT], ["salt-call"], SALT_VENV)
    except subprocess.CalledProcessError:
        if _pypi_reachable():
            raise
        pytest.skip("%s cannot be installed into %s: PyPI is unreachable" % (SALT_REQUIREMENT, SALT_VENV))
    return str(bin_dir / "salt-call")


@pytest.fixture
def salt_env(sandbox, salt_call):
    root = sandbox.path("lib", "salt-root")
    minion = sandbox.write("etc/salt/minion", yaml.safe_dump({
        "root_dir": str(root),
        "cachedir": str(root / "cache"),
        "pki_dir": str(root / "pki"),
        "sock_dir": str(root / "sock"),
        "log_file": str(root / "minion.log"),
        "site_note": "from the minion config",
        "include": "extra/*.conf",  # relative: resolved against the original's directory, as Salt does
    }))
    sandbox.write("etc/salt/minion.d/site.conf", "from_minion_d: yes\n")
    sandbox.write("etc/salt/extra/more.conf", "from_include: included\n")
    return {
        "SALT_MINION_CONFIG": str(minion),
        "HEAT_SALT_CMD": salt_call,
        "HEAT_SALT_WORKING": str(sandbox.path("lib", "heat-config-salt")),
        "HEAT_SALT_OUTPUTS": str(sandbox.path("run", "heat-config-salt")),
    }


def deployment(config, inputs=(), outputs=()):
    return {
        "id": DEP_ID, "name": "states", "group": "salt", "config": config, "options": {},
        "inputs": list(inputs) + [{"name": "deploy_action", "type": "String", "value": "CREATE"},
                                  {"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]}],
        "outputs": [{"name": n, "type": "String", "error_output": False} for n in outputs],
    }


def only_state(text):
    """The single state result in a results YAML document."""
    results = yaml.safe_load(text)
    assert len(results) == 1, results
    return next(iter(results.values()))


def test_state_applies_with_inputs_and_minion_options_readable_by_jinja(run_tool, salt_env, sandbox):
    target = sandbox.path("home", "motd")
    config = {"motd": {"file.managed": [
        {"name": str(target)},
        {"contents": '{{ opts["greeting"] }} {{ opts["count"] + 1 }} {{ opts["flags"]["on"] }} | '
                     '{{ opts["site_note"] }} | {{ opts["from_minion_d"] }} | {{ opts["from_include"] }}'},
    ]}}
    working = sandbox.path("lib", "heat-config-salt")
    sandbox.write("lib/heat-config-salt/%s.sls" % DEP_ID, "# stale and longer\n" * 200, mode=0o644)
    dep = deployment(config, inputs=[
        {"name": "greeting", "type": "String", "value": "hello-value"},
        {"name": "count", "type": "Number", "value": 41},
        {"name": "flags", "type": "Json", "value": {"on": True}},
    ])
    out, proc = hook_json(run_tool, "salt", dep, salt_env)

    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert target.read_text() == "hello-value 42 True | from the minion config | True | included\n"
    state = only_state(out["deploy_stdout"])
    assert state["result"] is True and state["__id__"] == "motd" and state["__sls__"] == DEP_ID
    assert out["deploy_stderr"] is None
    state_file = working / (DEP_ID + ".sls")
    assert state_file.read_text() == yaml.safe_dump(config, default_flow_style=False)
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    assert "greeting" in proc.stderr and "hello-value" not in proc.stderr  # names logged, values not
    assert not [n for n in os.listdir(sandbox.root.parent) if n.startswith("heat-config-salt-")], \
        "the private config dir (it holds input values) was left behind"


def test_failed_state_goes_to_stderr_with_salt_status(run_tool, salt_env):
    config = "ok:\n  test.succeed_without_changes: []\nbroken:\n  cmd.run:\n    - name: /bin/false\n"
    out, _ = hook_json(run_tool, "salt", deployment(config), salt_env)
    assert out["deploy_status_code"] == 2
    assert out["deploy_stdout"] is None
    for directory in (salt_env["HEAT_SALT_WORKING"], salt_env["HEAT_SALT_OUTPUTS"]):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    results = yaml.safe_load(out["deploy_stderr"])
    assert sorted(r["result"] for r in results.values()) == [False, True]


def test_generated_config_argv_and_all_true_states_override_the_status(run_tool, salt_env, sandbox, salt_call):
    """Salt's status is not always right: every state true means success (SPEC §8.9)."""
    wrapper = sandbox.write("home/salt-call", RECORDING_SALT_CALL, mode=0o755)
    env = dict(salt_env, HEAT_SALT_CMD=str(wrapper), REAL_SALT_CALL=salt_call, FORCE_STATUS="1",
               SALT_RECORD=str(sandbox.path("home", "salt-record.json")))
    dep = deployment("fine:\n  test.succeed_without_changes: []\n",
                     inputs=[{"name": "file_roots", "type": "String", "value": "/elsewhere"}])
    out, _ = hook_json(run_tool, "salt", dep, env)
    assert out["deploy_status_code"] == 0 and out["deploy_stderr"] is None
    assert only_state(out["deploy_stdout"])["result"] is True

    seen = json.loads(sandbox.path("home", "salt-record.json").read_text())
    config_dir = seen["config_dir"]
    working = salt_env["HEAT_SALT_WORKING"]
    assert seen["argv"] == ["--local", "--retcode-passthrough", "--out=json", "--config-dir=" + config_dir,
                            "state.sls", DEP_ID]
    assert seen["cwd"] == working
    assert seen["dir_mode"] == 0o700 and {f["mode"] for f in seen["files"].values()} == {0o600}
    etc = sandbox.path("etc", "salt")
    minion = yaml.safe_load(seen["files"]["minion"]["text"])
    assert minion["site_note"] == "from the minion config"
    assert minion["default_include"] == [str(etc / "minion.d" / "*.conf")]
    assert minion["include"] == [str(etc / "extra" / "*.conf"), os.path.join(config_dir, "heat-config.conf")]
    overrides = yaml.safe_load(seen["files"]["heat-config.conf"]["text"])
    assert overrides["file_roots"] == {"base": [working]}  # the hook's own options win over an input's
    assert overrides["file_client"] == "local"
    assert overrides["deploy_password"] == PLANTED_SECRETS[0]
    assert not os.path.exists(config_dir)


def test_outputs_from_files_and_from_the_return_structure(run_tool, salt_env, sandbox):
    """The original could only give top-level keys of salt's return (§11.28); heat_outputs_path files work too."""
    config = ("answer:\n  file.managed:\n    - name: {{ opts['heat_outputs_path'] }}.answer\n"
              "    - contents: '42'\n")
    out, _ = hook_json(run_tool, "salt", deployment(config, outputs=["answer", "retcode", "nothing"]), salt_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert out["answer"] == "42\n"  # file.managed ends contents with a newline
    assert out["retcode"] == 0
    assert out["nothing"] is None
    assert sandbox.path("run", "heat-config-salt", DEP_ID + ".answer").exists()


@pytest.mark.parametrize("config, message", [
    ("broken: [\n", "Rendering SLS"),
    ("x:\n  test.nop:\n    - require:\n      - file: nonexist\n", "Referenced state does not exist"),
])
def test_salt_errors_are_failed_deployments_not_crashes(run_tool, salt_env, config, message):
    """SPEC §11.27: the original crashed on salt's invocation errors."""
    out, proc = hook_json(run_tool, "salt", deployment(config), salt_env)
    assert out["deploy_status_code"] == 1
    assert out["deploy_stdout"] is None
    assert message in "".join(yaml.safe_load(out["deploy_stderr"]))
    assert "Traceback" not in proc.stderr


def test_missing_salt_call_is_127_naming_it(run_tool, salt_env):
    out, _ = hook_json(run_tool, "salt", deployment("x: {}\n"), dict(salt_env, HEAT_SALT_CMD="/nonexistent/salt-call"))
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"].startswith("/nonexistent/salt-call cannot be run: not installed")
    assert "HEAT_SALT_CMD" in out["deploy_stderr"]


def test_salt_call_that_cannot_be_executed_is_126(run_tool, salt_env, sandbox):
    not_executable = sandbox.write("home/salt-call", "#!/bin/sh\nexit 0\n", mode=0o644)
    out, _ = hook_json(run_tool, "salt", deployment("x: {}\n"), dict(salt_env, HEAT_SALT_CMD=str(not_executable)))
    assert out["deploy_status_code"] == 126
    assert out["deploy_stderr"].startswith("%s cannot be run: Permission denied" % not_executable)


def test_unusable_minion_config_and_config_type_are_named(run_tool, salt_env, sandbox):
    minion = sandbox.write("etc/salt/broken", "root_dir: [unclosed\n")
    out, _ = hook_json(run_tool, "salt", deployment("x: {}\n"), dict(salt_env, SALT_MINION_CONFIG=str(minion)))
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"].startswith("SALT_MINION_CONFIG %s is not valid YAML" % minion)
    out, _ = hook_json(run_tool, "salt", deployment(["not", "a", "state"]), salt_env)
    assert out["deploy_status_code"] == 1 and "config must be Salt state text or an object" in out["deploy_stderr"]


def test_cleanup_removes_only_gone_states_and_outputs(sandbox):
    working, outputs = sandbox.path("lib", "w"), sandbox.path("run", "o")
    for d in (working, outputs):
        d.mkdir()
    for name in ("kept.sls", "gone.sls", "common.sls"):
        (working / name).write_text("x: {}\n")
    for name in ("kept.a", "gone.a"):
        (outputs / name).write_text("x")
    env = {"HEAT_SALT_WORKING": str(working), "HEAT_SALT_OUTPUTS": str(outputs)}
    salt.cleanup(["kept"], HookContext(environ=env, gone_ids=["gone"]))
    assert sorted(os.listdir(working)) == ["common.sls", "kept.sls"]  # a user's own state stays
    assert os.listdir(outputs) == ["kept.a"]

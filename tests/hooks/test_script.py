"""The script hook (SPEC §8.1), run as users and shims run it: ``heat-config-hook script < deployment``."""
from __future__ import annotations

import os
import stat
import time

import pytest

from tests.support.sandbox import PLANTED_SECRETS, hook_json, process_gone


@pytest.fixture
def script_env(sandbox):
    work = sandbox.path("lib", "heat-config-script")
    outs = sandbox.path("run", "heat-config-script")
    return {"HEAT_SCRIPT_WORKING": str(work), "HEAT_SCRIPT_OUTPUTS": str(outs)}


def deployment(config, inputs=(), outputs=(), options=None, dep_id="1f0c5d2e-aaaa-4bbb-8ccc-000000000001"):
    return {
        "id": dep_id,
        "name": "test",
        "group": "script",
        "config": config,
        "inputs": list(inputs),
        "outputs": [{"name": n, "type": "String", "error_output": False} for n in outputs],
        "options": options or {},
    }


def run_hook(run_tool, script_env, dep, env=None, timeout=60):
    return hook_json(run_tool, "script", dep, {**script_env, **(env or {})}, timeout)


def test_inputs_become_environment_and_outputs_come_from_files(run_tool, script_env):
    script = (
        "#!/bin/sh\n"
        'printf "%s|%s|%s|%s|%s|%s" "$s" "$n" "$b" "$l" "$j" "$none" > $heat_outputs_path.env\n'
        'printf "with newline\\n" > $heat_outputs_path.second\n'
        "echo to-stdout; echo to-stderr >&2; exit 0\n"
    )
    dep = deployment(script, inputs=[
        {"name": "s", "type": "String", "value": "text"},
        {"name": "n", "type": "Number", "value": 5},
        {"name": "b", "type": "Boolean", "value": True},
        {"name": "l", "type": "CommaDelimitedList", "value": ["a", "b"]},
        {"name": "j", "type": "Json", "value": {"k": 1}},
        {"name": "none", "type": "Json", "value": None},
    ], outputs=["env", "second", "never_written"])
    out, _ = run_hook(run_tool, script_env, dep)
    assert out["env"] == 'text|5|true|["a", "b"]|{"k": 1}|'
    assert out["second"] == "with newline\n"  # content unchanged, trailing newline kept
    assert "never_written" not in out
    assert out["deploy_stdout"] == "to-stdout\n"
    assert out["deploy_stderr"] == "to-stderr\n"
    assert out["deploy_status_code"] == 0


def test_exit_status_and_heat_outputs_path_override(run_tool, script_env, sandbox):
    dep = deployment("#!/bin/sh\necho $heat_outputs_path\nexit 7\n",
                     inputs=[{"name": "heat_outputs_path", "type": "String", "value": "/tmp/evil"}])
    out, _ = run_hook(run_tool, script_env, dep)
    assert out["deploy_status_code"] == 7
    assert out["deploy_stdout"].strip() == os.path.join(script_env["HEAT_SCRIPT_OUTPUTS"], dep["id"])


def test_script_file_and_dirs_left_private_and_rewritten_without_stale_tail(run_tool, script_env):
    long = "#!/bin/sh\necho long\n" + "# padding\n" * 200
    dep = deployment(long)
    run_hook(run_tool, script_env, dep)
    path = os.path.join(script_env["HEAT_SCRIPT_WORKING"], dep["id"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for d in script_env.values():
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    dep["config"] = "#!/bin/sh\necho short\n"
    out, _ = run_hook(run_tool, script_env, dep)
    assert open(path).read() == "#!/bin/sh\necho short\n"  # SPEC §11.14: no tail of the older script
    assert out["deploy_stdout"] == "short\n"


def test_stale_outputs_of_an_earlier_run_are_not_reported(run_tool, script_env):
    dep = deployment("#!/bin/sh\necho first > $heat_outputs_path.result\n", outputs=["result"])
    out, _ = run_hook(run_tool, script_env, dep)
    assert out["result"] == "first\n"
    dep["config"] = "#!/bin/sh\ntrue\n"
    out, _ = run_hook(run_tool, script_env, dep)
    assert "result" not in out


def test_script_working_dir_is_cwd(run_tool, script_env):
    out, _ = run_hook(run_tool, script_env, deployment("#!/bin/sh\npwd\n"))
    assert out["deploy_stdout"].strip() == script_env["HEAT_SCRIPT_WORKING"]


def test_config_without_shebang_is_a_clear_failure(run_tool, script_env):
    out, _ = run_hook(run_tool, script_env, deployment("echo no shebang\n"))
    assert out["deploy_status_code"] == 126
    assert "#!" in out["deploy_stderr"]


def test_killed_script_reports_negative_signal(run_tool, script_env):
    out, _ = run_hook(run_tool, script_env, deployment("#!/bin/sh\nkill -9 $$\n"))
    assert out["deploy_status_code"] == -9


def test_timeout_kills_whole_process_group(run_tool, script_env, sandbox):
    pidfile = sandbox.path("child.pid")
    script = "#!/bin/sh\necho started\n(sleep 300 & echo $! > %s; wait) &\nsleep 300\n" % pidfile
    start = time.monotonic()
    out, _ = run_hook(run_tool, script_env, deployment(script, options={"timeout": 1}))
    assert time.monotonic() - start < 20
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].rstrip("\n").splitlines()[-1] == "timed out after 1 seconds"
    assert out["deploy_stdout"] == "started\n"
    grandchild = int(pidfile.read_text())
    assert process_gone(grandchild), "background child of the timed-out script survived"


@pytest.mark.parametrize("how", ["input", "env"])
def test_timeout_from_input_or_environment(run_tool, script_env, how):
    dep = deployment("#!/bin/sh\nsleep 30\n")
    env = {}
    if how == "input":
        dep["inputs"].append({"name": "deploy_timeout", "type": "String", "value": "1"})
    else:
        env["HEAT_CONFIG_HOOK_TIMEOUT"] = "1"
    out, _ = run_hook(run_tool, script_env, dep, env=env)
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].endswith("timed out after 1 seconds\n")


def test_options_timeout_wins_over_environment(run_tool, script_env):
    dep = deployment("#!/bin/sh\nsleep 2\necho done\n", options={"timeout": 30})
    out, _ = run_hook(run_tool, script_env, dep, env={"HEAT_CONFIG_HOOK_TIMEOUT": "1"})
    assert out["deploy_status_code"] == 0 and out["deploy_stdout"] == "done\n"


def test_huge_output_keeps_the_tail_and_states_the_cut(run_tool, script_env):
    script = "#!/bin/sh\nhead -c 3000000 /dev/zero | tr '\\0' 'x'\necho THE-END\n"
    out, _ = run_hook(run_tool, script_env, deployment(script))
    stdout = out["deploy_stdout"]
    assert stdout.endswith("xTHE-END\n")
    assert stdout.startswith("[... ") and "bytes of earlier output cut ...]" in stdout.splitlines()[0]
    assert len(stdout) < 1024 * 1024


def test_non_utf8_output_is_replaced(run_tool, script_env):
    out, _ = run_hook(run_tool, script_env, deployment("#!/bin/sh\nprintf 'a\\377b'\n"))
    assert out["deploy_stdout"] == "a\ufffdb"


def test_input_values_are_never_logged(run_tool, script_env):
    dep = deployment("#!/bin/sh\ntrue\n", inputs=[
        {"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]},
        {"name": "deploy_signal_id", "type": "String",
         "value": "http://127.0.0.1:1/v1/signal/x?Signature=%s" % PLANTED_SECRETS[2]},
        {"name": "db_password", "type": "String", "value": PLANTED_SECRETS[1]},
        {"name": "plain", "type": "String", "value": "harmless-value-1234"},
    ])
    _, result = run_hook(run_tool, script_env, dep)
    assert "deploy_password" in result.stderr  # names are logged
    assert "harmless-value-1234" not in result.stderr  # values are not
    for secret in PLANTED_SECRETS:
        assert secret not in result.stdout + result.stderr


@pytest.mark.parametrize("bad_id", ["../escape", "/abs", "a/b", "", "a\\b"])
def test_unsafe_id_is_refused_before_touching_paths(run_tool, script_env, sandbox, bad_id):
    out, _ = run_hook(run_tool, script_env, deployment("#!/bin/sh\ntouch /tmp/x\n", dep_id=bad_id))
    assert out["deploy_status_code"] != 0
    assert "deployment on stdin: id " in out["deploy_stderr"]
    assert not os.path.exists(sandbox.path("lib", "escape"))


def test_bad_stdin_exits_1_with_one_line(run_tool, script_env):
    result = run_tool("heat-config-hook", ["script"], input="not json", env=script_env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr


def test_cleanup_removes_only_files_of_deployments_known_gone(tmp_path):
    from hooks import script
    from hooks.toolkit.context import HookContext

    working, outputs = tmp_path / "w", tmp_path / "o"
    for d in (working, outputs):
        d.mkdir()
    for dep in ("kept", "gone"):
        (working / dep).write_text("#!/bin/sh\n")
        (outputs / (dep + ".result")).write_text("r")
    (working / "users-notes.txt").write_text("not ours")
    ctx = HookContext(environ={"HEAT_SCRIPT_WORKING": str(working), "HEAT_SCRIPT_OUTPUTS": str(outputs)},
                      gone_ids=["gone"])
    script.cleanup(["kept"], ctx)
    assert sorted(os.listdir(working)) == ["kept", "users-notes.txt"]
    assert os.listdir(outputs) == ["kept.result"]

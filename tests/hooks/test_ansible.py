"""The ansible hook (SPEC §8.2) with a real ansible-core, playbooks run against localhost over a local connection."""
from __future__ import annotations

import json
import os
import shutil
import stat
import time

import pytest

from hooks import ansible
from hooks.toolkit.context import HookContext
from tests.support.sandbox import BIN_DIR, PLANTED_SECRETS, hook_json

DEP_ID = "7c1e4d2a-0b5f-4c3e-9a8d-1234567890ab"

pytestmark = pytest.mark.skipif(not (BIN_DIR / "ansible-playbook").exists() and not shutil.which("ansible-playbook"),
                                reason="ansible-core is not installed (the `ansible` extra; scripts/setup installs it)")


@pytest.fixture
def ansible_env(sandbox):
    return {
        "HEAT_ANSIBLE_WORKING": str(sandbox.path("lib", "heat-config-ansible")),
        "HEAT_ANSIBLE_OUTPUTS": str(sandbox.path("run", "heat-config-ansible")),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
    }


def deployment(config, inputs=(), outputs=(), options=None, dep_id=DEP_ID):
    return {
        "id": dep_id,
        "name": "play",
        "group": "ansible",
        "config": config,
        "inputs": list(inputs),
        "outputs": [{"name": n, "type": "String", "error_output": False} for n in outputs],
        "options": {} if options is None else options,
    }


def run_hook(run_tool, ansible_env, dep, env=None, timeout=120):
    return hook_json(run_tool, "ansible", dep, {**ansible_env, **(env or {})}, timeout)


def playbook(*tasks, extra=""):
    body = "".join("    - " + task.strip().replace("\n", "\n      ") + "\n" for task in tasks)
    return "- hosts: localhost\n  connection: local\n  gather_facts: false\n%s  tasks:\n%s" % (extra, body)


def test_playbook_writes_a_file_from_inputs_and_returns_outputs(run_tool, ansible_env, sandbox):
    target = sandbox.path("home", "written.txt")
    config = playbook(
        'name: write the file\ncopy:\n  dest: "{{ target }}"\n  content: "{{ greeting }} {{ count + 1 }} {{ flags.on }}"',
        'name: output one\ncopy:\n  dest: "{{ heat_outputs_path }}.result"\n  content: "id={{ heat_config_id }}\\n"',
    )
    dep = deployment(config, inputs=[
        {"name": "target", "type": "String", "value": str(target)},
        {"name": "greeting", "type": "String", "value": "hello"},
        {"name": "count", "type": "Number", "value": 41},
        {"name": "flags", "type": "Json", "value": {"on": True}},
        {"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]},
    ], outputs=["result", "never_written"])
    out, proc = run_hook(run_tool, ansible_env, dep)

    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert target.read_text() == "hello 42 True"  # native JSON types reach the playbook
    assert out["result"] == "id=%s\n" % DEP_ID
    assert "never_written" not in out
    assert "PLAY RECAP" in out["deploy_stdout"]

    working = sandbox.path("lib", "heat-config-ansible")
    variables = json.loads((working / (DEP_ID + "_variables.json")).read_text())
    assert list(variables)[0] == "heat_config_id" and list(variables)[-1] == "heat_outputs_path"
    assert variables["count"] == 41 and variables["flags"] == {"on": True}
    assert variables["heat_outputs_path"] == str(sandbox.path("run", "heat-config-ansible", DEP_ID))
    assert (working / (DEP_ID + "_playbook.yaml")).read_text() == config
    for name in (DEP_ID + "_variables.json", DEP_ID + "_playbook.yaml"):
        assert stat.S_IMODE((working / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(working.stat().st_mode) == 0o700
    assert "greeting" in proc.stderr and "hello" not in proc.stderr  # names logged, values not


def test_failed_task_is_named_in_deploy_stderr(run_tool, ansible_env):
    config = playbook(
        "name: this one is fine\ncommand: /bin/true",
        'name: ignored failure\ncommand: /bin/false\nignore_errors: true',
        'name: break the deployment\nfail:\n  msg: "deliberate"',
        "name: never reached\ncommand: /bin/true",
    )
    out, _ = run_hook(run_tool, ansible_env, deployment(config))
    assert out["deploy_status_code"] == 2
    assert out["deploy_stderr"].splitlines()[-1] == 'ansible: task "break the deployment" failed on localhost'
    assert "ignored failure" not in out["deploy_stderr"]
    assert "never reached" not in out["deploy_stdout"]


def test_argv_options_and_environment_are_the_originals(run_tool, ansible_env, sandbox):
    """A wrapper records what the hook runs, then execs the real ansible-playbook."""
    record = sandbox.path("home", "argv.json")
    wrapper = sandbox.write("home/wrap-ansible", (
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'cb': os.environ.get('ANSIBLE_CALLBACK_PLUGINS')}, open(%r, 'w'))\n"
        "os.execvp('ansible-playbook', ['ansible-playbook'] + sys.argv[1:])\n" % str(record)), mode=0o755)
    working = sandbox.path("lib", "heat-config-ansible")
    working.mkdir(parents=True)
    (working / "hosts.ini").write_text("localhost ansible_connection=local\n")
    moddir = sandbox.path("home", "modules")
    moddir.mkdir()
    (moddir / "heat_probe.py").write_text(
        "#!/usr/bin/python3\nimport json\nprint(json.dumps({'changed': False, 'probe': 'custom module ran'}))\n")
    config = playbook(
        "name: tagged\nheat_probe:\nregister: probe\ntags: [wanted]",
        'name: keep\ncopy:\n  dest: "{{ heat_outputs_path }}.probe"\n  content: "{{ probe.probe }}"\ntags: [wanted]',
        "name: skipped by skip_tags\nfail: {msg: must not run}\ntags: [wanted, unwanted]",
        "name: untagged\nfail: {msg: must not run either}",
    )
    options = {"inventory": "hosts.ini", "modulepath": str(moddir), "tags": "wanted", "skip_tags": "unwanted",
               "callback_plugins": str(sandbox.path("home", "callbacks"))}
    out, _ = run_hook(run_tool, ansible_env, deployment(config, outputs=["probe"], options=options),
                      env={"HEAT_ANSIBLE_CMD": str(wrapper)})
    assert out["deploy_status_code"] == 0, out["deploy_stdout"] + out["deploy_stderr"]
    assert out["probe"] == "custom module ran"
    seen = json.loads(record.read_text())
    assert seen["argv"] == [
        "-i", str(working / "hosts.ini"), "--module-path", str(moddir), "--skip-tags", "unwanted",
        "--tags", "wanted", str(working / (DEP_ID + "_playbook.yaml")),
        "--extra-vars", "@" + str(working / (DEP_ID + "_variables.json")),
    ]
    assert seen["cb"] == options["callback_plugins"]


def test_default_inventory_and_empty_options_are_unset(run_tool, ansible_env, sandbox):
    record = sandbox.path("home", "argv.json")
    wrapper = sandbox.write("home/wrap", "#!/bin/sh\nprintf '%%s\\n' \"$@\" > %s\n" % record, mode=0o755)
    dep = deployment("- hosts: localhost\n  tasks: []\n", options={"tags": "", "modulepath": None})
    out, _ = run_hook(run_tool, ansible_env, dep, env={"HEAT_ANSIBLE_CMD": str(wrapper),
                                                       "HEAT_ANSIBLE_INVENTORY": "other,"})
    assert out["deploy_status_code"] == 0
    assert record.read_text().splitlines()[:3] == ["-i", "other,", str(
        sandbox.path("lib", "heat-config-ansible", DEP_ID + "_playbook.yaml"))]


def test_empty_config_is_success_with_nothing_written(run_tool, ansible_env, sandbox):
    out, proc = run_hook(run_tool, ansible_env, deployment(""))
    assert out["deploy_status_code"] == 0
    assert "nothing to do" in proc.stderr
    assert os.listdir(sandbox.path("lib", "heat-config-ansible")) == []


def test_missing_ansible_is_a_failure_not_a_silent_success(run_tool, ansible_env):
    """SPEC §11.18: the original signalled success with no status when ansible was absent."""
    out, _ = run_hook(run_tool, ansible_env, deployment(playbook("command: /bin/true")),
                      env={"HEAT_ANSIBLE_CMD": "/nonexistent/ansible-playbook"})
    assert out["deploy_status_code"] == 127
    assert "not installed" in out["deploy_stderr"]


@pytest.mark.skipif(not (BIN_DIR / "ansible-playbook").exists(), reason="needs ansible-core in the venv ([ansible])")
def test_ansible_playbook_is_found_beside_the_interpreter_without_path(run_tool, ansible_env, sandbox):
    """A venv install with [ansible]: ansible-playbook sits in the venv's bin, which PATH need not hold."""
    bare_path = "/usr/sbin:/usr/bin:/sbin:/bin"
    assert shutil.which("ansible-playbook", path=bare_path) is None, "the host has its own ansible-playbook"
    target = sandbox.path("home", "found.txt")
    dep = deployment(playbook('copy:\n  dest: "%s"\n  content: "ran"' % target))
    out, proc = run_hook(run_tool, ansible_env, dep, env={"PATH": bare_path})
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert target.read_text() == "ran" and "PLAY RECAP" in out["deploy_stdout"]
    assert "Running %s -i" % (BIN_DIR / "ansible-playbook") in proc.stderr


def test_timeout_kills_the_whole_process_group(run_tool, ansible_env, sandbox):
    pidfile = sandbox.path("home", "sleeper.pid")
    config = playbook("name: hang\nshell: echo $$ > %s; exec sleep 120" % pidfile)
    started = time.monotonic()
    out, _ = run_hook(run_tool, ansible_env, deployment(config, options={"timeout": 12}))
    assert time.monotonic() - started < 60
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].splitlines()[-1] == "timed out after 12 seconds"
    assert pidfile.exists(), "ansible did not reach the hanging task within the timeout (machine overloaded?)"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not os.path.exists("/proc/%d" % pid), "the playbook's sleep survived the timeout"


def test_unsafe_id_is_refused_before_any_file_is_written(run_tool, ansible_env, sandbox):
    out, _ = run_hook(run_tool, ansible_env, deployment(playbook("command: /bin/true"), dep_id="../escape"))
    assert out["deploy_status_code"] != 0
    assert "deployment on stdin: id " in out["deploy_stderr"]
    assert not sandbox.path("lib", "escape_playbook.yaml").exists()


def test_cleanup_removes_files_of_gone_deployments_only(sandbox):
    working = sandbox.path("lib", "w")
    outputs = sandbox.path("run", "o")
    for d in (working, outputs):
        d.mkdir()
    for dep_id in ("kept", "gone"):
        (working / (dep_id + "_playbook.yaml")).write_text("x")
        (working / (dep_id + "_variables.json")).write_text("{}")
        (outputs / (dep_id + ".result")).write_text("r")
    (working / "hosts.ini").write_text("localhost\n")  # a user's inventory is not ours to remove
    (working / "unknown_playbook.yaml").write_text("x")  # not known to have left: kept when gone_ids are given
    env = {"HEAT_ANSIBLE_WORKING": str(working), "HEAT_ANSIBLE_OUTPUTS": str(outputs)}
    ansible.cleanup(["kept"], HookContext(environ=env, gone_ids=["gone"]))
    assert sorted(os.listdir(working)) == ["hosts.ini", "kept_playbook.yaml", "kept_variables.json",
                                           "unknown_playbook.yaml"]
    assert os.listdir(outputs) == ["kept.result"]
    ansible.cleanup(["kept"], HookContext(environ=env))  # gone ids unknown: everything not kept goes
    assert sorted(os.listdir(working)) == ["hosts.ini", "kept_playbook.yaml", "kept_variables.json"]


def test_output_is_bounded_and_the_cut_stated(run_tool, ansible_env):
    """SPEC §12.11: ~800 KB of playbook output (a failing task echoing its 400 KB stdout twice) stays bounded."""
    config = playbook("name: chatty\nshell: head -c 400000 /dev/zero | tr '\\\\0' x; exit 1")
    out, _ = run_hook(run_tool, ansible_env, deployment(config))
    assert out["deploy_status_code"] == 2
    assert len(out["deploy_stdout"].encode()) <= 512 * 1024 + 200
    assert out["deploy_stdout"].startswith("[... ") and "bytes of earlier output cut" in out["deploy_stdout"]
    assert "PLAY RECAP" in out["deploy_stdout"]  # the tail is what is kept


def test_vault_and_registry_passwords_never_reach_the_log(run_tool, ansible_env, sandbox):
    """Input values are not logged, not even when the playbook fails on them (run_tool checks stderr)."""
    vault_file = sandbox.write("home/vault-pass", PLANTED_SECRETS[1] + "\n", mode=0o600)
    config = playbook('name: use the credentials\nfail:\n  msg: "login with {{ registry_password }} failed"')
    dep = deployment(config, inputs=[
        {"name": "registry_password", "type": "String", "value": PLANTED_SECRETS[0]},
        {"name": "vault_token", "type": "String", "value": PLANTED_SECRETS[3]},
    ])
    out, proc = run_hook(run_tool, ansible_env, dep, env={"ANSIBLE_VAULT_PASSWORD_FILE": str(vault_file)})
    assert out["deploy_status_code"] == 2
    assert 'task "use the credentials" failed' in out["deploy_stderr"]
    assert "registry_password" in proc.stderr  # the name is logged...
    for secret in PLANTED_SECRETS:
        assert secret not in proc.stderr  # ...never a value

"""The puppet hook (SPEC §8.7), run as ``heat-config-hook puppet``, with Debian's real Puppet 7 where it matters.

Run as root, ``puppet apply`` writes its own state under /etc/puppet, /var/lib/puppet,
/var/cache/puppet and /run/puppet whatever HOME is (checked with strace), and only its
``--confdir``/``--vardir``/... options move that; the hook's argv is fixed by SPEC.  So
``$HEAT_PUPPET_CMD`` is a wrapper that records the argv, working directory and FACTER_*
environment the hook gave it, then execs the real puppet with those directories moved
into the sandbox: the real tool applies the real manifest, and nothing lands on the host.
Tests of the ``enable_debug``/``enable_verbose`` argv (whose log destinations under
/var/log/puppet SPEC fixes) and of option handling only record, without running puppet.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from agent_common.deployment_contract import ID_MAX_LEN
from hooks import puppet
from hooks.toolkit.context import HookContext
from tests.support.sandbox import PLANTED_SECRETS, hook_json

DEP_ID = "9b2c5d2e-aaaa-4bbb-8ccc-000000000001"
CREATED = "2024-03-05T09:12:44Z"
LOG_BASE = "2024-03-05-09-12-44Z-" + DEP_ID

needs_puppet = pytest.mark.skipif(shutil.which("puppet") is None,
                                  reason="puppet is not installed (scripts/debian-packages.txt: puppet)")

WRAPPER = r'''#!%(python)s
import json, os, sys
with open(%(record)r, "w") as f:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(),
               "facts": {k: v for k, v in os.environ.items() if k.startswith("FACTER_")}}, f)
if %(real)r:
    base = %(state)r
    moved = []
    for setting in ("confdir", "codedir", "vardir", "logdir", "rundir", "ssldir", "publicdir"):
        moved += ["--" + setting, os.path.join(base, setting)]
    os.execvp("puppet", ["puppet", sys.argv[1]] + moved + sys.argv[2:])
print("Notice: recorded only")
sys.exit(int(os.environ.get("FAKE_PUPPET_EXIT", "2")))
'''


@pytest.fixture
def puppet_env(sandbox):
    return {
        "HEAT_PUPPET_WORKING": str(sandbox.path("lib", "heat-config-puppet")),
        "HEAT_PUPPET_OUTPUTS": str(sandbox.path("run", "heat-config-puppet")),
        "HEAT_PUPPET_LOGDIR": str(sandbox.path("log", "puppet")),
        "HEAT_PUPPET_HIERA_DATADIR": str(sandbox.path("etc", "puppet", "hieradata")),
    }


def wrapper(sandbox, real):
    record = sandbox.path("home", "puppet-call.json")
    path = sandbox.write("home/bin/puppet-%s" % ("real" if real else "fake"), WRAPPER % {
        "python": sys.executable, "record": str(record), "real": real,
        "state": str(sandbox.path("home", "puppet-state"))}, mode=0o755)
    return str(path), record


def deployment(config, inputs=(), outputs=(), options=None, **extra):
    dep = {"id": DEP_ID, "name": "web_config", "group": "puppet", "creation_time": CREATED, "config": config,
           "inputs": list(inputs), "outputs": [{"name": n, "type": "String", "error_output": False} for n in outputs],
           "options": {} if options is None else options}
    dep.update(extra)
    return dep


def run_hook(run_tool, env, dep, extra_env=None):
    out, proc = hook_json(run_tool, "puppet", dep, {**env, **(extra_env or {})}, timeout=120)
    assert "Traceback" not in proc.stderr
    return out, proc


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def hostname_f():
    result = subprocess.run(["hostname", "-f"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


@needs_puppet
def test_real_puppet_applies_the_manifest_with_facts_and_outputs(run_tool, sandbox, puppet_env):
    cmd, record = wrapper(sandbox, real=True)
    target = sandbox.path("home", "motd")
    config = ('file { "%s": content => "${greeting} ${count} ${enabled} ${settings}\\n" }\n'
              'file { "${heat_outputs_path}.result": content => "applied on ${fqdn}" }\n' % target)
    inputs = [
        {"name": "greeting", "type": "String", "value": "hello"},
        {"name": "count", "type": "Number", "value": 41},  # the original crashed on these three (§11.16)
        {"name": "enabled", "type": "Boolean", "value": True},
        {"name": "settings", "type": "Json", "value": {"a": 1}},
        {"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]},
    ]
    out, proc = run_hook(run_tool, puppet_env, deployment(config, inputs, outputs=["result", "never_written"]),
                         {"HEAT_PUPPET_CMD": cmd})

    assert out["deploy_status_code"] == 0, out["deploy_stderr"]  # puppet's 2: changes applied
    assert target.read_text() == 'hello 41 true {"a": 1}\n'
    assert out["result"] == "applied on %s" % (hostname_f() or "")
    assert "never_written" not in out
    assert "Applied catalog" in out["deploy_stdout"]

    working = sandbox.path("lib", "heat-config-puppet")
    manifest = working / (DEP_ID + ".pp")
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["apply", "--color", "false", "--detailed-exitcodes", "--logdest", "console", str(manifest)]
    assert seen["cwd"] == str(working)
    assert manifest.read_text() == config and mode(manifest) == 0o700
    assert mode(working) == 0o700 and mode(puppet_env["HEAT_PUPPET_OUTPUTS"]) == 0o700
    facts = seen["facts"]
    assert facts["FACTER_heat_outputs_path"] == str(sandbox.path("run", "heat-config-puppet", DEP_ID))
    assert facts["FACTER_count"] == "41" and facts["FACTER_settings"] == '{"a": 1}'
    if hostname_f():
        assert facts["FACTER_fqdn"] == hostname_f()
    assert "FACTER_deploy_config_name" not in facts  # hiera is off by default

    logdir = sandbox.path("log", "puppet")
    assert sorted(os.listdir(logdir)) == [LOG_BASE + "-stderr.log", LOG_BASE + "-stdout.log"]
    assert (logdir / (LOG_BASE + "-stdout.log")).read_text() == out["deploy_stdout"]
    assert (logdir / (LOG_BASE + "-stderr.log")).read_text() == out["deploy_stderr"]
    assert mode(logdir / (LOG_BASE + "-stdout.log")) == 0o600
    assert "greeting" in proc.stderr and "hello" not in proc.stderr  # fact names logged, values not



@needs_puppet
@pytest.mark.parametrize("changes, status", [(False, 4), (True, 6)])
def test_real_puppet_failures_pass_their_status_through(run_tool, sandbox, puppet_env, changes, status):
    cmd, _ = wrapper(sandbox, real=True)
    config = 'exec { "deliberate failure": command => "/bin/false" }\n'
    if changes:
        config += 'file { "%s": content => "changed" }\n' % sandbox.path("home", "changed")
    out, _ = run_hook(run_tool, puppet_env, deployment(config), {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == status
    assert "deliberate failure" in out["deploy_stderr"]
    assert sandbox.path("home", "changed").exists() == changes


def test_options_give_the_originals_argv(run_tool, sandbox, puppet_env):
    cmd, record = wrapper(sandbox, real=False)
    options = {"modulepath": "/srv/modules", "tags": "web,db", "enable_debug": True, "enable_verbose": "true"}
    out, _ = run_hook(run_tool, puppet_env, deployment("notice('x')\n", options=options), {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == 0
    assert json.loads(record.read_text())["argv"] == [
        "apply", "--color", "false", "--detailed-exitcodes", "--logdest", "console",
        "--modulepath", "/srv/modules", "--tags", "web,db",
        "--debug", "--logdest", "/var/log/puppet/heat-debug.log",
        "--verbose", "--logdest", "/var/log/puppet/heat-verbose.log",
        str(sandbox.path("lib", "heat-config-puppet", DEP_ID + ".pp")),
    ]


def test_hiera_data_file_and_facter_off(run_tool, sandbox, puppet_env):
    cmd, record = wrapper(sandbox, real=False)
    inputs = [{"name": "port", "type": "Number", "value": 8080}, {"name": "name", "type": "String", "value": "web"},
              {"name": "deploy_password", "type": "String", "value": PLANTED_SECRETS[0]}]
    datadir = sandbox.path("etc", "puppet", "hieradata")
    stale = sandbox.write("etc/puppet/hieradata/heat_config_web_config.json", "{}" * 1000, mode=0o644)
    out, _ = run_hook(run_tool, puppet_env, deployment("", inputs, options={
        "enable_hiera": True, "enable_facter": False, "modulepath": "", "tags": None}), {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == 0
    assert stale.read_text() == '{"port": 8080, "name": "web", "deploy_password": "%s"}' % PLANTED_SECRETS[0]
    assert mode(stale) == 0o600 and os.listdir(datadir) == ["heat_config_web_config.json"]
    seen = json.loads(record.read_text())
    assert set(seen["facts"]) - {"FACTER_fqdn"} == {"FACTER_deploy_config_name", "FACTER_heat_outputs_path"}
    assert seen["facts"]["FACTER_deploy_config_name"] == "web_config"
    assert seen["argv"][-2:] == ["console", str(sandbox.path("lib", "heat-config-puppet", DEP_ID + ".pp"))]


@pytest.mark.parametrize("code, status", [(0, 0), (2, 0), (1, 1), (4, 4), (6, 6)])
def test_detailed_exit_codes(run_tool, sandbox, puppet_env, code, status):
    cmd, _ = wrapper(sandbox, real=False)
    out, _ = run_hook(run_tool, puppet_env, deployment(""), {"HEAT_PUPPET_CMD": cmd, "FAKE_PUPPET_EXIT": str(code)})
    assert out["deploy_status_code"] == status
    assert out["deploy_stdout"] == "Notice: recorded only\n"


def test_missing_puppet_is_a_failure_not_a_silent_success(run_tool, sandbox, puppet_env):
    missing = str(sandbox.path("no-such-puppet"))
    out, _ = run_hook(run_tool, puppet_env, deployment("notice('x')\n"), {"HEAT_PUPPET_CMD": missing})
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"] == "%s cannot be run: not installed (install puppet, or set HEAT_PUPPET_CMD)\n" % missing


def test_log_files_are_named_from_now_without_creation_time(run_tool, sandbox, puppet_env):
    cmd, _ = wrapper(sandbox, real=False)
    dep = deployment("")
    del dep["creation_time"]
    out, _ = run_hook(run_tool, puppet_env, dep, {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == 0
    names = sorted(os.listdir(sandbox.path("log", "puppet")))
    assert [re.sub(r"^\d{4}(-\d\d){5}Z-", "TS-", n) for n in names] == [
        "TS-%s-stderr.log" % DEP_ID, "TS-%s-stdout.log" % DEP_ID]


def test_the_longest_id_names_the_manifest_and_both_logs(run_tool, sandbox, puppet_env):
    """The puppet log name is the longest file named after an id (agent_common.deployment_contract.ID_FILE_NAMES): an id of
    ID_MAX_LEN characters must still fit in it (issue 12 defect 10)."""
    cmd, _ = wrapper(sandbox, real=False)
    long_id = "p" * ID_MAX_LEN
    out, _ = run_hook(run_tool, puppet_env, deployment("", id=long_id), {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert sorted(os.listdir(sandbox.path("log", "puppet"))) == [
        "2024-03-05-09-12-44Z-%s-%s.log" % (long_id, stream) for stream in ("stderr", "stdout")]
    assert os.listdir(sandbox.path("lib", "heat-config-puppet")) == [long_id + ".pp"]


@pytest.mark.parametrize("change, reason", [
    ({"options": {"enable_debug": "maybe"}}, "option enable_debug must be true or false, not 'maybe'"),
    ({"options": {"modulepath": ["/a", "/b"]}}, "option modulepath must be a string"),
    ({"options": "enable_hiera"}, "deployment %s: options must be an object, not a string" % DEP_ID),
    ({"config": {"file": "x"}}, "config must be a Puppet manifest (a string), not dict"),
    ({"creation_time": "../../etc/x"}, "creation_time '../../etc/x' would leave the directory"),
    ({"name": "../x", "options": {"enable_hiera": True}}, "deployment name '../x' would leave the directory"),
])
def test_bad_deployments_are_refused_naming_the_key(run_tool, sandbox, puppet_env, change, reason):
    cmd, record = wrapper(sandbox, real=False)
    out, _ = run_hook(run_tool, puppet_env, {**deployment("notice('x')\n"), **change}, {"HEAT_PUPPET_CMD": cmd})
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"].startswith("refused: " + reason)
    assert not record.exists()


def test_cleanup_removes_manifests_outputs_and_logs_of_gone_deployments(sandbox):
    working, outputs, logdir = sandbox.path("lib", "w"), sandbox.path("run", "o"), sandbox.path("log", "l")
    for d in (working, outputs, logdir):
        d.mkdir()
    for dep_id in ("kept", "gone", "unknown"):
        (working / (dep_id + ".pp")).write_text("")
        (outputs / (dep_id + ".result")).write_text("")
        for stream in ("stdout", "stderr"):
            (logdir / ("2024-03-05-09-12-44Z-%s-%s.log" % (dep_id, stream))).write_text("")
    (working / "modules").mkdir()  # a user's module path is not ours to remove
    env = {"HEAT_PUPPET_WORKING": str(working), "HEAT_PUPPET_OUTPUTS": str(outputs), "HEAT_PUPPET_LOGDIR": str(logdir)}
    puppet.cleanup(["kept"], HookContext(environ=env, gone_ids=["gone"]))
    assert sorted(os.listdir(working)) == ["kept.pp", "modules", "unknown.pp"]
    assert sorted(os.listdir(outputs)) == ["kept.result", "unknown.result"]
    assert sorted(os.listdir(logdir)) == sorted("2024-03-05-09-12-44Z-%s-%s.log" % (i, s)
                                                for i in ("kept", "unknown") for s in ("stdout", "stderr"))
    puppet.cleanup(["kept"], HookContext(environ=env))  # gone ids unknown: all but the kept ones go
    assert sorted(os.listdir(working)) == ["kept.pp", "modules"]
    assert len(os.listdir(logdir)) == 2


def test_default_log_directory_is_persistent_and_not_the_state_directory():
    """SPEC §11.31: the original logged into /var/run/heat-config/deployed (tmpfs, the legacy state dir's name)."""
    assert puppet.LOGDIR_DEFAULT.startswith("/var/log/")
    assert "deployed" not in puppet.LOGDIR_DEFAULT

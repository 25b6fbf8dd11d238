"""The chef hook (SPEC §8.11) run through ``heat-config-hook chef``, with a real git and a stand-in chef-client.

Chef cannot be installed here (not in Debian 12, not on PyPI), so a small
``chef-client`` first on PATH does what the hook relies on: it takes
``-z --config FILE -j FILE``, reads client.rb and the node file as chef-client
does, runs the node's run list against the cookbooks of client.rb's
``cookbook_path`` (a missing cookbook fails the run), writes outputs to
``$heat_outputs_path.<name>`` and records its argv, cwd and environment.  The
tests check the files, argv and environment the hook produced against SPEC.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess

import pytest

from hooks import chef
from hooks.toolkit.context import HookContext
from tests.support.sandbox import PLANTED_SECRETS, hook_json

DEP_ID = "3f6a1c2e-9b8d-4e7f-a1b2-c3d4e5f60718"

FAKE_CHEF_CLIENT = r'''#!/usr/bin/env python3
import json, os, re, sys, time
args = sys.argv[1:]
if len(args) != 5 or args[:2] != ["-z", "--config"] or args[3] != "-j":
    sys.exit("usage: chef-client -z --config FILE -j FILE")
config = dict(line.split(" ", 1) for line in open(args[2]).read().split("\n"))
node = json.load(open(args[4]))
json.dump({"argv": args, "cwd": os.getcwd(), "heat_outputs_path": os.environ.get("heat_outputs_path")},
          open(os.environ["FAKE_CHEF_RECORD"], "w"))
time.sleep(node.get("sleep", 0))
status = 0
for item in node["run_list"]:
    cookbook, _, recipe = re.fullmatch(r"recipe\[([^\]]+)\]", item).group(1).partition("::")
    recipe = recipe or "default"
    if cookbook == "heat_output":  # writes the node attribute named by the recipe to that output
        with open("%s.%s" % (os.environ["heat_outputs_path"], recipe), "w") as f:
            f.write(str(node[recipe]))
    elif os.path.exists(os.path.join(config["cookbook_path"].strip("'"), cookbook, "recipes", recipe + ".rb")):
        print("Recipe: %s::%s" % (cookbook, recipe))
    else:
        print("FATAL: Cookbook %s not found" % cookbook, file=sys.stderr)
        status = 1
print("Chef Client finished")
sys.exit(int(node.get("exit_status", status)))
'''


@pytest.fixture
def chef_env(sandbox):
    bin_dir = sandbox.path("home", "bin")
    sandbox.write("home/bin/chef-client", FAKE_CHEF_CLIENT, mode=0o755)
    return {
        "HEAT_CHEF_WORKING": str(sandbox.path("lib", "heat-config-chef")),
        "HEAT_CHEF_OUTPUTS": str(sandbox.path("run", "heat-config-chef")),
        "FAKE_CHEF_RECORD": str(sandbox.path("home", "chef-record.json")),
        "PATH": "%s:%s" % (bin_dir, sandbox.env["PATH"]),
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.test",
    }


def deployment(config, inputs=(), outputs=(), options=None, action="CREATE"):
    heat_inputs = [
        {"name": "deploy_server_id", "value": "srv-1"},
        {"name": "deploy_action", "value": action},
        {"name": "deploy_stack_id", "value": "stack/1"},
        {"name": "deploy_resource_name", "value": "chef_deploy"},
        {"name": "deploy_signal_transport", "value": "HEAT_SIGNAL"},
        {"name": "deploy_auth_url", "value": "http://127.0.0.1:5000/v3"},
        {"name": "deploy_username", "value": "stack-user"},
        {"name": "deploy_user_id", "value": "uid-1"},
        {"name": "deploy_password", "value": PLANTED_SECRETS[0]},
        {"name": "deploy_project_id", "value": "pid-1"},
    ]
    return {
        "id": DEP_ID, "name": "cook", "group": "chef", "config": config,
        "inputs": [dict(i, type="String") for i in inputs] + heat_inputs,
        "outputs": [{"name": n, "type": "String", "error_output": False} for n in outputs],
        "options": {} if options is None else options,
    }


def host_fqdn() -> str:
    """The node file's name, found the way the hook is specified to find it."""
    proc = subprocess.run(["hostname", "-f"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else socket.getfqdn()


def record(chef_env):
    with open(chef_env["FAKE_CHEF_RECORD"]) as f:
        return json.load(f)


def git(*args, cwd=None, env=None):
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def kitchen_repo(sandbox, chef_env):
    """A bare git repository (file URL) holding a kitchen with the cookbook ``web``, and a work tree to push from."""
    env = dict(sandbox.env, **chef_env)
    bare = sandbox.path("home", "kitchen.git")
    work = sandbox.path("home", "kitchen-src")
    git("init", "-q", "--bare", str(bare), env=env)
    git("clone", "-q", str(bare), str(work), env=env)
    (work / "cookbooks" / "web" / "recipes").mkdir(parents=True)
    (work / "cookbooks" / "web" / "recipes" / "default.rb").write_text("package 'nginx'\n")
    git("add", "-A", cwd=work, env=env)
    git("commit", "-q", "-m", "web", cwd=work, env=env)
    git("push", "-q", "origin", "HEAD", cwd=work, env=env)
    return {"url": "file://%s" % bare, "work": work, "env": env}


def test_client_rb_node_file_argv_env_and_outputs(run_tool, chef_env, sandbox):
    dep = deployment('["recipe[heat_output::greeting]", "recipe[heat_output::port]"]', inputs=[
        {"name": "greeting", "value": "hello-value"},
        {"name": "port", "value": 8080},
        {"name": "environment", "value": "production"},
    ], outputs=["greeting", "port", "never_written"])
    out, proc = hook_json(run_tool, "chef", dep, chef_env)

    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert out["greeting"] == "hello-value" and out["port"] == "8080"
    assert "never_written" not in out
    assert out["deploy_stdout"] == "Chef Client finished\n"

    working = sandbox.path("lib", "heat-config-chef")
    kitchen = working / "kitchen"
    client_rb = working / "client.rb"
    assert client_rb.read_bytes() == (
        "log_level :debug\nlog_location STDOUT\nlocal_mode true\nchef_zero.enabled true\n"
        "cookbook_path '%s/cookbooks'\nrole_path '%s/roles'\nenvironment_path '%s/environments'\n"
        "environment 'production'\nnode_path '%s/node'" % (kitchen, kitchen, kitchen, working)).encode()
    node_file = working / "node" / (host_fqdn() + ".json")
    # Every input but environment and Heat's own (signal credentials included, SPEC §11.12), then run_list.
    assert node_file.read_text() == json.dumps(
        {"greeting": "hello-value", "port": 8080,
         "run_list": ["recipe[heat_output::greeting]", "recipe[heat_output::port]"]},
        indent=4, separators=(",", ": "))
    for path, mode in ((client_rb, 0o600), (node_file, 0o600), (working / "node", 0o700), (working, 0o700),
                       (sandbox.path("run", "heat-config-chef"), 0o700)):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path

    seen = record(chef_env)
    assert seen["argv"] == ["-z", "--config", str(client_rb), "-j", str(node_file)]
    assert seen["cwd"] == str(working)
    assert seen["heat_outputs_path"] == str(sandbox.path("run", "heat-config-chef", DEP_ID))
    assert "greeting" in proc.stderr and "hello-value" not in proc.stderr  # names logged, values not


def test_files_are_replaced_whole_and_without_environment_line(run_tool, chef_env, sandbox):
    """Stale longer files (the original opened them without truncating, §11.14) leave no tail; 0600 after."""
    working = sandbox.path("lib", "heat-config-chef")
    sandbox.write("lib/heat-config-chef/client.rb", "x" * 2000, mode=0o644)
    sandbox.write("lib/heat-config-chef/node/%s.json" % host_fqdn(), "y" * 2000, mode=0o644)
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[heat_output::a]"]', inputs=[{"name": "a", "value": "1"}],
                                                    outputs=["a"]), chef_env)
    assert out["deploy_status_code"] == 0 and out["a"] == "1"
    text = (working / "client.rb").read_text()
    assert text.endswith("node_path '%s/node'" % working) and "environment '" not in text and "x" not in text
    node = json.loads((working / "node" / (host_fqdn() + ".json")).read_text())
    assert node == {"a": "1", "run_list": ["recipe[heat_output::a]"]}
    assert stat.S_IMODE((working / "client.rb").stat().st_mode) == 0o600


def test_chef_failure_status_and_output_are_passed_through(run_tool, chef_env):
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[missing]"]'), chef_env)
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"] == "FATAL: Cookbook missing not found\n"
    out, _ = hook_json(run_tool, "chef", deployment("[]", inputs=[{"name": "exit_status", "value": 3}]), chef_env)
    assert out["deploy_status_code"] == 3


def test_kitchen_is_cloned_and_recloned_on_update(run_tool, chef_env, sandbox, kitchen_repo):
    working = sandbox.path("lib", "heat-config-chef")
    options = {"kitchen": kitchen_repo["url"]}
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[web]"]', options=options), chef_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert out["deploy_stdout"] == "Recipe: web::default\nChef Client finished\n"
    assert (working / "kitchen" / ".git").is_dir()

    # A new cookbook upstream; UPDATE removes the old kitchen (with a stray file) and clones afresh.
    work = kitchen_repo["work"]
    (work / "cookbooks" / "db" / "recipes").mkdir(parents=True)
    (work / "cookbooks" / "db" / "recipes" / "default.rb").write_text("package 'postgresql'\n")
    git("add", "-A", cwd=work, env=kitchen_repo["env"])
    git("commit", "-q", "-m", "db", cwd=work, env=kitchen_repo["env"])
    git("push", "-q", "origin", "HEAD", cwd=work, env=kitchen_repo["env"])
    (working / "kitchen" / "stray").write_text("old")
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[web]", "recipe[db]"]', options=options,
                                                    action="UPDATE"), chef_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert "Recipe: db::default" in out["deploy_stdout"]
    assert not (working / "kitchen" / "stray").exists()

    # CREATE keeps the kitchen, so git refuses to clone over it: git's own status and output are the result.
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[web]"]', options=options), chef_env)
    assert out["deploy_status_code"] == 128
    assert "already exists and is not an empty directory" in out["deploy_stderr"]


def test_kitchen_path_option_and_clone_failure(run_tool, chef_env, sandbox, kitchen_repo):
    kitchen = sandbox.path("home", "my-kitchen")
    options = {"kitchen": kitchen_repo["url"], "kitchen_path": str(kitchen)}
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[web]"]', options=options), chef_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    client_rb = sandbox.path("lib", "heat-config-chef", "client.rb").read_text().splitlines()
    assert client_rb[4:7] == ["cookbook_path '%s/cookbooks'" % kitchen, "role_path '%s/roles'" % kitchen,
                              "environment_path '%s/environments'" % kitchen]

    os.remove(chef_env["FAKE_CHEF_RECORD"])
    options = {"kitchen": "file://%s" % sandbox.path("home", "no-such.git")}
    out, _ = hook_json(run_tool, "chef", deployment('["recipe[web]"]', options=options), chef_env)
    assert out["deploy_status_code"] == 128
    assert "no-such.git" in out["deploy_stderr"] and "Cloning into" in out["deploy_stderr"]
    assert not os.path.exists(chef_env["FAKE_CHEF_RECORD"]), "chef-client ran after a failed clone"


@pytest.mark.parametrize("config, problem", [
    ("recipe[web]", "config is not a JSON array"),
    ('{"run_list": ["recipe[web]"]}', "config must be a JSON array"),
])
def test_config_that_is_not_a_json_array_is_a_failed_deployment(run_tool, chef_env, sandbox, config, problem):
    out, proc = hook_json(run_tool, "chef", deployment(config), chef_env)
    assert out["deploy_status_code"] == 1
    assert problem in out["deploy_stderr"]
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(chef_env["FAKE_CHEF_RECORD"])
    assert not sandbox.path("lib", "heat-config-chef", "node").exists()


@pytest.mark.parametrize("dep, problem", [
    (deployment("[]", inputs=[{"name": "environment", "value": "prod' ; system('id') ; '"}]), "input environment"),
    (deployment("[]", options={"kitchen_path": 5}), "option kitchen_path must be a string"),
    (deployment("[]", options=["kitchen"]), "options must be an object"),
])
def test_bad_inputs_and_options_are_named(run_tool, chef_env, dep, problem):
    out, _ = hook_json(run_tool, "chef", dep, chef_env)
    assert out["deploy_status_code"] == 1 and problem in out["deploy_stderr"]
    assert not os.path.exists(chef_env["FAKE_CHEF_RECORD"])


def test_failing_hostname_falls_back_to_the_fqdn(run_tool, chef_env, sandbox):
    """SPEC §11.29: the original crashed when ``hostname -f`` failed."""
    sandbox.write("home/bin/hostname", "#!/bin/sh\necho 'hostname: Name or service not known' >&2\nexit 1\n",
                  mode=0o755)
    out, proc = hook_json(run_tool, "chef", deployment("[]"), chef_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    node_file = sandbox.path("lib", "heat-config-chef", "node", socket.getfqdn() + ".json")
    assert record(chef_env)["argv"][-1] == str(node_file)
    assert json.loads(node_file.read_text()) == {"run_list": []}
    assert "hostname -f gave no name" in proc.stderr


def test_missing_chef_client_is_127_naming_it(run_tool, chef_env, sandbox):
    """SPEC §11.29: the original crashed (bytes/str mix-up) when chef-client could not run."""
    os.remove(sandbox.path("home", "bin", "chef-client"))
    out, proc = hook_json(run_tool, "chef", deployment("[]"), chef_env)
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"].startswith("chef-client cannot be run: not installed")
    assert "Traceback" not in proc.stderr


def test_timeout_stops_chef_client(run_tool, chef_env):
    dep = deployment("[]", inputs=[{"name": "sleep", "value": 60}], options={"timeout": 2})
    out, _ = hook_json(run_tool, "chef", dep, chef_env)
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].splitlines()[-1] == "timed out after 2 seconds"


def test_cleanup_removes_outputs_of_gone_deployments(sandbox):
    outputs = sandbox.path("run", "o")
    outputs.mkdir()
    for name in ("kept.a", "gone.a", "other.a"):
        (outputs / name).write_text("x")
    chef.cleanup(["kept"], HookContext(environ={"HEAT_CHEF_OUTPUTS": str(outputs)}, gone_ids=["gone"]))
    assert sorted(os.listdir(outputs)) == ["kept.a", "other.a"]

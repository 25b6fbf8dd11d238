"""The docker-cmd hook and its os-refresh-config companion (SPEC §8.10), on the real engine.

The engine is the private dockerd of tests/support/docker_engine.py with its imported
busybox image; every container a test makes carries the config_id of one of its
deployments, and the ``cleanup`` fixture removes exactly those.  The tests of bad
configs, DELETE and a missing docker need no engine: a ``docker`` that records
its calls proves nothing was run.
"""
from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.support.sandbox import PLANTED_SECRETS, hook_json

SUFFIXED = re.compile(r"^web-[a-z0-9]{8}$")


def deployment(config, action="CREATE", inputs=(), options=None):
    return {
        "id": str(uuid.uuid4()),
        "name": "containers",
        "group": "docker-cmd",
        "config": config,
        "inputs": list(inputs) + [
            {"name": "deploy_action", "type": "String", "value": action},
            {"name": "deploy_stack_id", "type": "String", "value": "web/5f6e7d8c"},
            {"name": "deploy_resource_name", "type": "String", "value": "deploy_web"},
        ],
        "outputs": [],
        "options": options or {},
    }


@pytest.fixture
def engine_env(docker_engine):
    return {"DOCKER_HOST": docker_engine.host}


@pytest.fixture
def cleanup(docker_engine):
    """Call with a config_id: every container labelled with it is removed at the end, whatever happened."""
    ids = []
    yield ids.append
    for config_id in ids:
        docker_engine.remove_containers("label=config_id=" + config_id)


def inspect(engine, name, template):
    return engine.docker("inspect", "--type", "container", "--format", template, name).stdout.decode().strip()


def names_of(engine, config_id):
    out = engine.docker("ps", "-a", "--filter", "label=config_id=" + config_id, "--format", "{{.Names}}").stdout
    return sorted(out.decode().split())


def refresh(run_tool, sandbox, deployments, env):
    sandbox.write("run/heat-config", json.dumps(deployments), mode=0o600)
    return run_tool("heat-config-hook", ["--refresh", "docker-cmd"], env=env, timeout=120)


@pytest.fixture
def recording_docker(sandbox):
    """A ``docker`` that only records its argv: (env pointing HEAT_DOCKER_CMD at it, path of the record)."""
    record = sandbox.path("home", "docker-calls")
    fake = sandbox.path("home", "docker")
    fake.write_text('#!/bin/sh\necho "$*" >> %s\n' % record)
    fake.chmod(0o755)
    return {"HEAT_DOCKER_CMD": str(fake)}, record


# -- with the real engine -----------------------------------------------------------------------
@pytest.mark.docker
def test_runs_in_start_order_with_labels_options_and_an_exec(run_tool, docker_engine, engine_env, cleanup):
    image = docker_engine.base_image
    # A key equal to an image's name is no collision: only a container of that name is (the original
    # asked a bare ``docker inspect``, which finds images too).
    image_named = image.split(":")[0]
    config = (
        "second:\n  image: %(image)s\n  command: sleep 300\n  start_order: 2\n  user: root\n  restart: 'no'\n"
        "  volumes_from: [first]\n  environment: [GREETING=hello, 'DB_PASSWORD=%(secret)s']\n"
        "first:\n  image: %(image)s\n  start_order: 1\n  net: none\n  privileged: false\n  volumes: [/data]\n"
        "  command: [sh, -c, 'echo from-first > /data/f; exec sleep 300']\n"
        "%(image_named)s:\n  image: %(image)s\n  command: sleep 300\n"
        "probe:\n  action: exec\n  start_order: 3\n"
        "  command: [second, sh, -c, 'for i in 1 2 3 4 5 6 7 8 9; do [ -s /data/f ] && break; sleep 0.3; done;"
        " cat /data/f; echo \"$GREETING\"']\n"
        % {"image": image, "image_named": image_named, "secret": PLANTED_SECRETS[0]})
    dep = deployment(config, inputs=[{"name": "db_password", "type": "String", "value": PLANTED_SECRETS[0]}])
    cleanup(dep["id"])
    out, proc = hook_json(run_tool, "docker-cmd", dep, engine_env, timeout=120)  # stdout is only the JSON
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert names_of(docker_engine, dep["id"]) == sorted([image_named, "first", "second"])

    # Created in ascending start_order, the default 0 first; each ``run -d`` printed its id, the exec its output.
    ids = [inspect(docker_engine, n, "{{.Id}}") for n in (image_named, "first", "second")]
    created = [inspect(docker_engine, n, "{{.Created}}") for n in (image_named, "first", "second")]
    assert created == sorted(created)
    assert out["deploy_stdout"] == "\n".join([i + "\n" for i in ids] + ["from-first\nhello\n"])
    assert out["deploy_stderr"] == ""

    labels = json.loads(inspect(docker_engine, "second", "{{json .Config.Labels}}"))
    assert labels == {"deploy_stack_id": "web/5f6e7d8c", "deploy_resource_name": "deploy_web",
                      "config_id": dep["id"], "container_name": "second", "managed_by": "docker-cmd"}
    host = json.loads(inspect(docker_engine, "second", "{{json .HostConfig}}"))
    assert host["VolumesFrom"] == ["first"]  # --volumes-from: docker rejects the original's --volumes_from
    assert host["RestartPolicy"]["Name"] == "no"
    assert inspect(docker_engine, "second", "{{.Config.User}}") == "root"
    assert "GREETING=hello" in json.loads(inspect(docker_engine, "second", "{{json .Config.Env}}"))
    first = json.loads(inspect(docker_engine, "first", "{{json .HostConfig}}"))
    assert (first["NetworkMode"], first["Privileged"]) == ("none", False)
    assert inspect(docker_engine, "first", "{{.State.Running}}") == "true"
    assert "--env=DB_PASSWORD=***" in proc.stderr  # the logged command masks environment values


@pytest.mark.docker
def test_exit_codes_and_the_last_failure_wins_while_processing_continues(run_tool, docker_engine, engine_env,
                                                                         cleanup):
    image = docker_engine.base_image
    config = {
        "allowed": {"image": image, "detach": False, "command": ["sh", "-c", "echo three; exit 3"],
                    "exit_codes": [0, 3]},
        "fails": {"image": image, "detach": False, "start_order": 1, "command": ["sh", "-c", "echo oops >&2; exit 4"]},
        "fails_too": {"image": image, "detach": False, "start_order": 1,
                      "command": ["sh", "-c", "echo worse >&2; exit 5"]},
        "after": {"image": image, "detach": False, "start_order": 2, "command": "echo still ran"},
    }
    dep = deployment(config)
    cleanup(dep["id"])
    out, proc = hook_json(run_tool, "docker-cmd", dep, engine_env, timeout=120)
    assert out == {"deploy_stdout": "three\n\nstill ran\n", "deploy_stderr": "oops\n\nworse\n",
                   "deploy_status_code": 5}
    assert names_of(docker_engine, dep["id"]) == ["after", "allowed", "fails", "fails_too"]
    assert inspect(docker_engine, "fails", "{{.State.ExitCode}}") == "4"
    assert "Error running" in proc.stderr and "[4]" in proc.stderr


@pytest.mark.docker
def test_name_collision_suffix_exec_in_own_container_and_companion(run_tool, sandbox, docker_engine, engine_env,
                                                                   cleanup):
    image = docker_engine.base_image
    first = deployment({"web": {"image": image, "command": "sleep 300", "environment": ["GEN=1"]}})
    cleanup(first["id"])
    out, _ = hook_json(run_tool, "docker-cmd", first, engine_env, timeout=120)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]

    # The UPDATE: a new id, the same key; "web" is taken, so a suffixed name; the exec finds *this* web.
    second = deployment({"web": {"image": image, "command": "sleep 300", "environment": ["GEN=2"]},
                         "probe": {"action": "exec", "start_order": 1, "command": ["web", "sh", "-c", "echo $GEN"]}},
                        action="UPDATE")
    cleanup(second["id"])
    out, _ = hook_json(run_tool, "docker-cmd", second, engine_env, timeout=120)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert out["deploy_stdout"].endswith("\n\n2\n")
    [suffixed] = names_of(docker_engine, second["id"])
    assert SUFFIXED.match(suffixed), suffixed
    assert inspect(docker_engine, suffixed, '{{index .Config.Labels "container_name"}}') == "web"

    # A container docker-cmd does not manage is neither removed nor renamed, though labelled alike.
    stranger = str(uuid.uuid4())
    cleanup(stranger)
    docker_engine.docker("run", "-d", "--name", "stranger", "--label", "config_id=" + stranger,
                         "--label", "container_name=renamed", image, "sleep", "300")

    # While the first deployment is still in the metadata its "web" keeps the name: no rename, nothing removed.
    done = refresh(run_tool, sandbox, [first, second], engine_env)
    assert done.returncode == 0, done.stderr
    assert 'Cannot rename "%s" since "web" still exists' % suffixed in done.stderr
    assert names_of(docker_engine, first["id"]) == ["web"] and names_of(docker_engine, second["id"]) == [suffixed]

    done = refresh(run_tool, sandbox, [second, {"id": "s1", "group": "script", "config": ""}], engine_env)
    assert done.returncode == 0, done.stderr
    assert names_of(docker_engine, first["id"]) == []  # its deployment left the metadata: removed
    assert names_of(docker_engine, second["id"]) == ["web"]  # the name is free again: renamed
    assert inspect(docker_engine, "web", "{{.State.Running}}") == "true"
    assert names_of(docker_engine, stranger) == ["stranger"]

    # Nothing more to do on the next run.
    done = refresh(run_tool, sandbox, [second], engine_env)
    assert done.returncode == 0 and "rename" not in done.stderr, done.stderr
    assert names_of(docker_engine, second["id"]) == ["web"]


@pytest.mark.docker
def test_timeout_stops_a_foreground_container_with_124(run_tool, docker_engine, engine_env, cleanup):
    dep = deployment({"slow": {"image": docker_engine.base_image, "detach": False, "command": "sleep 300"},
                      "never": {"image": docker_engine.base_image, "start_order": 1, "command": "true"}},
                     options={"timeout": 4})
    cleanup(dep["id"])
    out, _ = hook_json(run_tool, "docker-cmd", dep, engine_env, timeout=60)
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].splitlines()[-1] == "timed out after 4 seconds"
    assert names_of(docker_engine, dep["id"]) == ["slow"]  # nothing runs after the timeout


# -- without an engine --------------------------------------------------------------------------
@pytest.mark.parametrize("config, message", [
    ("- a\n- b\n", "refused: config must map container names to their settings, not list"),
    ("web: [unclosed\n", "refused: config is not valid YAML"),
    ({"web": "busybox"}, "refused: container web: settings must be a mapping, not str"),
    ({"ok": {"image": "x"}, "web": {"image": "x", "action": "kill"}},
     "refused: container web: action 'kill' is neither 'run' nor 'exec'"),
    ({"web": {"image": "x", "start_order": "first"}}, "refused: container web: start_order must be a number"),
    ({"web": {"image": "x", "exit_codes": "0,3"}}, "refused: container web: exit_codes must be a list of integers"),
    ({"web": {"command": "sleep 1"}}, "refused: container web: image must be a non-empty string"),
    ({"web": {"image": "x", "detach": "sometimes"}}, "refused: container web: detach must be true or false"),
    ({"web": {"image": "x", "volumes": {"/a": "/b"}}}, "refused: container web: volumes must be a string or a list"),
    ({"bad name": {"image": "x"}}, "refused: container bad name: not a valid container name"),
    ({"probe": {"action": "exec"}}, "refused: container probe: command must name the container to exec in"),
])
def test_a_bad_config_fails_naming_the_container_and_field_and_runs_nothing(run_tool, recording_docker, config,
                                                                             message):
    env, record = recording_docker
    out, proc = hook_json(run_tool, "docker-cmd", deployment(config), env)
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"].startswith(message), out["deploy_stderr"]
    assert "Traceback" not in proc.stderr
    assert not record.exists()  # checked before anything ran, so nothing ran


@pytest.mark.parametrize("config, action", [("", "CREATE"), ({}, "CREATE"), (None, "UPDATE"),
                                            ({"web": {"image": "x"}}, "DELETE"), ("# nothing\n", "CREATE")])
def test_delete_and_empty_config_succeed_without_docker(run_tool, recording_docker, config, action):
    env, record = recording_docker
    out, _ = hook_json(run_tool, "docker-cmd", deployment(config, action=action), env)
    assert out == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert not record.exists()


def test_missing_docker_is_127_naming_the_variable(run_tool, sandbox):
    missing = str(sandbox.path("home", "no-docker"))
    out, proc = hook_json(run_tool, "docker-cmd", deployment({"web": {"image": "x"}}), {"HEAT_DOCKER_CMD": missing})
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"] == "%s cannot be run: not installed (install docker, or set HEAT_DOCKER_CMD)\n" % missing
    assert "Traceback" not in proc.stderr
    done = refresh(run_tool, sandbox, [], {"HEAT_DOCKER_CMD": missing})
    assert done.returncode == 0 and "HEAT_DOCKER_CMD" in done.stderr


def test_companion_leaves_everything_when_the_deployments_file_is_missing_or_broken(run_tool, sandbox,
                                                                                     recording_docker):
    env, record = recording_docker
    done = run_tool("heat-config-hook", ["--refresh", "docker-cmd"], env=env)
    assert done.returncode == 0 and "No config file" in done.stderr
    sandbox.write("run/heat-config", "{not json", mode=0o600)
    done = run_tool("heat-config-hook", ["--refresh", "docker-cmd"], env=env)
    assert done.returncode == 0 and "not valid JSON" in done.stderr
    assert not record.exists()  # no container is removed on the strength of an unreadable file

"""The docker-compose hook and its os-refresh-config companion (SPEC §8.3), on the real engine with real compose.

Every test that runs compose runs twice: with Compose v1 (Debian 12's docker-compose
1.29) and with Compose v2 (Debian 13's ``docker compose`` 2.26 CLI plugin, which
scripts/setup unpacks under .cache/); the hook picks the generation itself, from what
``$DOCKER_CONFIG`` holds (tests/support/compose.py).
"""
from __future__ import annotations

import json
import os
import stat
import time
import uuid

import pytest
import yaml

from tests.support.compose import Compose, make_compose, setup_problem
from tests.support.sandbox import PLANTED_SECRETS, hook_json
from tests.support.terminal import say

pytestmark = pytest.mark.docker

#: Generations whose versions this run has printed already (once each, into the run's output).
_REPORTED = set()


def _compose(request, tmp_path, docker_engine, generation: str) -> Compose:
    problem = setup_problem(generation)
    if problem:
        pytest.fail(problem)
    compose = make_compose(generation, tmp_path / "docker-config")
    if generation not in _REPORTED:
        _REPORTED.add(generation)
        server = docker_engine.docker("version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})")
        say(request, "docker-compose hook tests: Compose %s = %s, engine dockerd %s"
            % (generation, compose.version(docker_engine.env()), server.stdout.decode().strip()))
    return compose


@pytest.fixture(params=["v1", "v2"])
def compose(request, tmp_path, docker_engine) -> Compose:
    """The compose generation under test, as the hook will find it (v1: no plugin; v2: the CLI plugin)."""
    return _compose(request, tmp_path, docker_engine, request.param)


@pytest.fixture
def compose_env(sandbox, docker_engine, compose):
    return {
        "HEAT_DOCKER_COMPOSE_WORKING": str(sandbox.path("lib", "heat-config-docker-compose")),
        "DOCKER_HOST": docker_engine.host,
        **compose.env,
    }


def working(sandbox):
    return sandbox.path("lib", "heat-config-docker-compose")


def service(engine, command, **extra):
    """One service of the base image; the network mode the engine allows, a stop that does not wait 10 s."""
    svc = {"image": engine.base_image, "command": command}
    if engine.compose_network_mode:
        svc["network_mode"] = engine.compose_network_mode
    svc.update(extra)
    return svc


def deployment(name, config, inputs=(), action="CREATE"):
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "group": "docker-compose",
        "config": config,
        "inputs": list(inputs) + [{"name": "deploy_action", "type": "String", "value": action}],
        "outputs": [],
        "options": {},
    }


def run_hook(run_tool, compose_env, dep, env=None, timeout=180):
    return hook_json(run_tool, "docker-compose", dep, {**compose_env, **(env or {})}, timeout)


def refresh(run_tool, compose_env, sandbox, deployments, env=None):
    sandbox.write("run/heat-config", json.dumps(deployments), mode=0o600)
    merged = dict(compose_env)
    merged.update(env or {})
    return run_tool("heat-config-hook", ["--refresh", "docker-compose"], env=merged, timeout=180)


def containers(engine, project):
    out = engine.docker("ps", "-a", "--filter", "label=com.docker.compose.project=" + project,
                        "--format", "{{.Names}} {{.State}}").stdout.decode()
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.fixture
def down_after(docker_engine):
    """Remove every container of the projects a test names, whatever happened."""
    projects = []
    yield projects.append
    for project in projects:
        docker_engine.remove_containers("label=com.docker.compose.project=" + project)


def test_v1_layout_comes_up_with_env_files_from_python_literal_input(run_tool, compose_env, compose, sandbox,
                                                                    docker_engine, down_after):
    """The originals' form: a v1-layout YAML string, env_files as the Python repr of a String input.

    Compose v2 no longer reads the v1 layout: the hook writes it wrapped under ``services:``."""
    down_after("webapp")
    net = "    net: %s\n" % (docker_engine.compose_network_mode or "bridge")  # the v1 key: v2 gets network_mode
    config = ("web:\n    image: %s\n    command: sleep 300\n    env_file: ./conf/web.env\n%s"
              % (docker_engine.base_image, net))
    env_files = str([{"file_name": "./conf/web.env", "content": "GREETING=hello\nDB_PASSWORD=%s\n" % PLANTED_SECRETS[0]},
                     {"file_name": "./unused.env", "content": "X=1\n"}])
    out, proc = run_hook(run_tool, compose_env, deployment("webapp", config, inputs=[
        {"name": "env_files", "type": "String", "value": env_files}]))
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    web = compose.container("webapp", "web")
    assert containers(docker_engine, "webapp") == {web: "running"}
    env = docker_engine.docker("exec", web, "env").stdout.decode()
    assert "GREETING=hello" in env
    project = working(sandbox) / "webapp"
    assert stat.S_IMODE(project.stat().st_mode) == 0o700
    assert stat.S_IMODE((project / "conf" / "web.env").stat().st_mode) == 0o600
    assert not (project / "unused.env").exists()  # only referenced files are written
    written = (project / "docker-compose.yml").read_text()
    if compose.generation == "v1":
        assert written == config
    else:  # wrapped, and the v1 key net (refused by v2) renamed network_mode
        web = yaml.safe_load(config)["web"]
        if "net" in web:
            web["network_mode"] = web.pop("net")
        assert yaml.safe_load(written) == {"services": {"web": web}}
    assert PLANTED_SECRETS[0] not in proc.stderr


def test_services_layout_with_booleans_and_json_env_files(run_tool, compose_env, compose, docker_engine, down_after):
    """SPEC §11.23 (booleans/nulls, the services: layout) and §12.13.14 (env_files as JSON text)."""
    down_after("jsonapp")
    net = "    network_mode: none\n" if docker_engine.compose_network_mode else ""
    text = ("version: '2.2'\nservices:\n  api:\n    image: %s\n    command: [sleep, '300']\n    init: true\n"
            "    tty: false\n    stdin_open: no\n    environment: {UNSET_HERE: null}\n    env_file: [a.env]\n%s"
            % (docker_engine.base_image, net))
    env_files = json.dumps([{"file_name": "a.env", "content": "MODE=json"}])
    out, _ = run_hook(run_tool, compose_env, deployment("jsonapp", text, inputs=[
        {"name": "env_files", "type": "String", "value": env_files}]))
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    api = compose.container("jsonapp", "api")
    assert containers(docker_engine, "jsonapp") == {api: "running"}
    assert "MODE=json" in docker_engine.docker("exec", api, "env").stdout.decode()


def test_a_service_that_fails_to_come_up_is_reported_with_its_last_log_lines(run_tool, compose_env, compose,
                                                                            docker_engine, down_after):
    """db never becomes healthy, so compose cannot start app: the report names db and ends with its logs."""
    down_after("brokenapp")
    config = {"version": "2.2", "services": {
        "db": service(docker_engine, ["sh", "-c", "echo starting db; seq 1 100 | sed s/^/noise-/; "
                                                  "echo 'fatal: bad config line 7' >&2; exec sleep 300"], init=True,
                      healthcheck={"test": ["CMD", "false"], "interval": "1s", "timeout": "1s", "retries": 1}),
        "app": service(docker_engine, ["sleep", "300"], init=True, depends_on={"db": {"condition": "service_healthy"}}),
        "ok": service(docker_engine, ["sleep", "300"], init=True),
    }}
    out, _ = run_hook(run_tool, compose_env, deployment("brokenapp", config))
    assert out["deploy_status_code"] != 0
    report = out["deploy_stderr"][out["deploy_stderr"].index(
        "service db (container %s) is Up" % compose.container("brokenapp", "db")):]
    assert "(unhealthy)" in report.splitlines()[0]
    assert "its last stdout lines:\n" in report and "noise-100\n" in report
    assert report.endswith("its last stderr lines:\nfatal: bad config line 7\n")
    assert "starting db" not in report and "noise-50" not in report  # a bounded tail
    assert "service ok" not in out["deploy_stderr"]


def test_a_service_that_exits_at_once_fails_the_deployment(run_tool, compose_env, compose, docker_engine, down_after):
    """``up -d`` succeeds, but the service died right away: that is not a deployment that came up."""
    down_after("crashapp")
    config = {"version": "2.2", "services": {
        "job": service(docker_engine, ["sh", "-c", "echo 'cannot open /data' >&2; sleep 0.5; exit 3"])}}
    out, _ = run_hook(run_tool, compose_env, deployment("crashapp", config))
    assert out["deploy_status_code"] == 1
    assert "service job (container %s) is Exited (3)" % compose.container("crashapp", "job") in out["deploy_stderr"]
    assert "cannot open /data" in out["deploy_stderr"]


def test_an_orphan_of_an_earlier_version_does_not_fail_the_update(run_tool, compose_env, compose, docker_engine,
                                                                  down_after):
    down_after("orphanapp")
    first = {"version": "2.2", "services": {"old": service(docker_engine, ["sh", "-c", "exit 3"])}}
    out, _ = run_hook(run_tool, compose_env, deployment("orphanapp", first))
    assert out["deploy_status_code"] == 1 and "service old" in out["deploy_stderr"]
    second = {"version": "2.2", "services": {"new": service(docker_engine, ["sleep", "300"], init=True)}}
    out, _ = run_hook(run_tool, compose_env, deployment("orphanapp", second))
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert containers(docker_engine, "orphanapp") == {compose.container("orphanapp", "old"): "exited",
                                                      compose.container("orphanapp", "new"): "running"}


def test_delete_and_empty_config_succeed_without_running_compose(run_tool, compose_env, docker_engine, down_after):
    """SPEC §11.22: the original crashed here, failing the Heat resource delete."""
    down_after("gone")
    config = {"version": "2.2", "services": {"x": service(docker_engine, ["sleep", "300"], init=True)}}
    for dep in (deployment("gone", config, action="DELETE"), deployment("gone", "")):
        out, _ = run_hook(run_tool, compose_env, dep)
        assert out == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert containers(docker_engine, "gone") == {}


def test_companion_writes_projects_and_takes_down_removed_ones(run_tool, compose_env, compose, sandbox, docker_engine,
                                                             down_after):
    down_after("keepme")
    down_after("dropme")
    keep = deployment("keepme", {"version": "2.2", "services": {
        "k": service(docker_engine, ["sleep", "300"], init=True)}})
    drop = deployment("dropme", {"version": "2.2", "services": {
        "d": service(docker_engine, ["sleep", "300"], init=True)}})
    done = refresh(run_tool, compose_env, sandbox, [keep, drop, {"group": "docker-compose", "config": {}}])
    assert done.returncode == 0, done.stderr  # the entry without a name is logged, not fatal (SPEC §11.25)
    for dep in (keep, drop):
        path = working(sandbox) / dep["name"] / "docker-compose.yml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        out, _ = run_hook(run_tool, compose_env, dep)
        assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    (working(sandbox) / "dropme" / "secret.env").write_text("TOKEN=%s\n" % PLANTED_SECRETS[3])

    # "dropme" leaves the metadata; a script deployment of the same name must not keep it alive (SPEC §11.24).
    other = {"id": "x1", "name": "dropme", "group": "script", "config": "#!/bin/sh\n", "inputs": []}
    done = refresh(run_tool, compose_env, sandbox, [keep, other])
    assert done.returncode == 0, done.stderr
    assert containers(docker_engine, "dropme") == {}  # removed, not merely killed
    assert not (working(sandbox) / "dropme").exists()  # nor its env files
    assert containers(docker_engine, "keepme") == {compose.container("keepme", "k"): "running"}
    assert (working(sandbox) / "keepme" / "docker-compose.yml").exists()


def test_companion_survives_a_missing_or_broken_deployments_file(run_tool, sandbox, tmp_path):
    env = {"HEAT_DOCKER_COMPOSE_WORKING": str(working(sandbox)), "HEAT_DOCKER_COMPOSE_CMD": "/bin/false"}
    done = run_tool("heat-config-hook", ["--refresh", "docker-compose"], env=env)
    assert done.returncode == 0 and "No config file" in done.stderr
    project = working(sandbox) / "still-here"
    project.mkdir(parents=True)
    (project / "docker-compose.yml").write_text("x: {image: busybox}\n")
    sandbox.write("run/heat-config", "{not json", mode=0o600)
    done = run_tool("heat-config-hook", ["--refresh", "docker-compose"], env=env)
    assert done.returncode == 0
    assert "not valid JSON" in done.stderr
    assert (project / "docker-compose.yml").exists()  # an unreadable file is no reason to take projects down


def test_timeout_kills_compose_and_reports_124(run_tool, compose_env, sandbox, docker_engine, down_after):
    """compose waits for a dependency that never becomes healthy; the deployment's timeout ends the whole group."""
    down_after("slowapp")
    config = {"version": "2.2", "services": {
        "dep": service(docker_engine, ["sleep", "300"], init=True,
                       healthcheck={"test": ["CMD", "false"], "interval": "1h"}),
        "app": service(docker_engine, ["sleep", "300"], init=True, depends_on={"dep": {"condition": "service_healthy"}}),
    }}
    dep = deployment("slowapp", config)
    dep["options"] = {"timeout": 6}
    started = time.monotonic()
    out, _ = run_hook(run_tool, compose_env, dep)
    assert time.monotonic() - started < 60
    assert out["deploy_status_code"] == 124, out["deploy_stderr"]
    assert out["deploy_stderr"].splitlines()[-1] == "timed out after 6 seconds"
    project = str(working(sandbox) / "slowapp")
    survivors = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink("/proc/%s/cwd" % pid) == project:
                survivors.append(pid)
        except OSError:
            pass
    assert survivors == [], "compose processes survived the timeout"


def test_heat_docker_compose_cmd_overrides_the_choice(request, run_tool, sandbox, tmp_path, docker_engine,
                                                      down_after):
    """v2 answers here, yet ``$HEAT_DOCKER_COMPOSE_CMD`` wins: ``docker-compose`` forces v1, and the value is split
    like shell words, so ``docker compose --ansi never`` runs v2 with that option."""
    v2 = _compose(request, tmp_path, docker_engine, "v2")
    problem = setup_problem("v1")
    if problem:
        pytest.fail(problem)
    env = {"HEAT_DOCKER_COMPOSE_WORKING": str(working(sandbox)), "DOCKER_HOST": docker_engine.host, **v2.env}
    v1 = Compose("v1", v2.docker_config)
    for name, cmd, generation in (("forcedone", "docker-compose", v1), ("forcedtwo", "docker compose --ansi never", v2)):
        down_after(name)
        config = {"version": "2.2", "services": {"web": service(docker_engine, ["sleep", "300"], init=True)}}
        out, _ = run_hook(run_tool, {**env, "HEAT_DOCKER_COMPOSE_CMD": cmd}, deployment(name, config))
        assert out["deploy_status_code"] == 0, out["deploy_stderr"]
        assert containers(docker_engine, name) == {generation.container(name, "web"): "running"}


def test_bad_names_and_env_files_are_refused(run_tool, sandbox):
    env = {"HEAT_DOCKER_COMPOSE_WORKING": str(working(sandbox)), "HEAT_DOCKER_COMPOSE_CMD": "/bin/false"}
    out, _ = run_hook(run_tool, env, deployment("../escape", "web: {image: busybox}\n"))
    assert out["deploy_status_code"] != 0 and "deployment name" in out["deploy_stderr"]
    assert not sandbox.path("lib", "escape").exists()
    dep = deployment("envesc", "web: {image: busybox, env_file: ../../outside.env}\n", inputs=[
        {"name": "env_files", "type": "String",
         "value": json.dumps([{"file_name": "../../outside.env", "content": "A=1"}])}])
    out, _ = run_hook(run_tool, env, dep)
    assert out["deploy_status_code"] != 0 and "outside the project directory" in out["deploy_stderr"]
    assert not working(sandbox).parent.joinpath("outside.env").exists()

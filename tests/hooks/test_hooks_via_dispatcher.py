"""The ansible, docker-compose and kubelet hooks the way a server runs them: os-refresh-config's
configure.d scripts (the element companions, then the dispatcher), signals to a loopback Heat."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.compose import make_compose, setup_problem
from tests.support.deployments import deployment, keystone_inputs
from tests.support.dispatcher import write_deployments
from tests.support.sandbox import BIN_DIR, PLANTED_SECRETS, assert_no_planted_secret

ELEMENTS = Path(__file__).resolve().parents[2] / "elements"
COMPANIONS = {
    "docker-compose": ELEMENTS / "heat-config-docker-compose/os-refresh-config/configure.d/50-heat-config-docker-compose",
    "kubelet": ELEMENTS / "heat-config-kubelet/os-refresh-config/configure.d/50-heat-config-kubelet",
}
HAVE_ANSIBLE = (BIN_DIR / "ansible-playbook").exists() or bool(shutil.which("ansible-playbook"))


@pytest.fixture
def server(sandbox):
    sandbox.env.update(
        HEAT_ANSIBLE_WORKING=str(sandbox.path("lib", "heat-config-ansible")),
        HEAT_ANSIBLE_OUTPUTS=str(sandbox.path("run", "heat-config-ansible")),
        HEAT_DOCKER_COMPOSE_WORKING=str(sandbox.path("lib", "heat-config-docker-compose")),
        HEAT_KUBELET_MANIFESTS=str(sandbox.path("lib", "kubelet-manifests")),
        HEAT_CONFIG_SIGNAL_RETRY_S="3",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3",
    )
    return sandbox


def configure_d(sandbox, *groups):
    """The configure.d scripts in their order: companions (50-…), then the dispatcher (55-heat-config)."""
    for group in groups:
        done = subprocess.run([str(COMPANIONS[group])], env=sandbox.env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert_no_planted_secret(done.stderr, "stderr of 50-heat-config-%s" % group)
    done = subprocess.run([str(BIN_DIR / "heat-config")], env=sandbox.env, capture_output=True, text=True,
                          timeout=600)
    assert_no_planted_secret(done.stderr, "stderr of heat-config")
    assert done.returncode == 0, done.stderr
    return done


def test_companion_scripts_are_executable():
    for path in COMPANIONS.values():
        assert os.access(path, os.X_OK), path


@pytest.mark.skipif(not HAVE_ANSIBLE, reason="ansible-core is not installed (the `ansible` extra)")
def test_ansible_deployment_signalled_then_its_files_removed_when_gone(server, cloud):
    playbook = ("- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
                "    - copy:\n        dest: '{{ heat_outputs_path }}.motd'\n        content: 'port {{ port }}'\n")
    dep = deployment(0, config=playbook, group="ansible", outputs=["motd"],
                     inputs=[{"name": "port", "type": "Number", "value": 8080},
                             {"name": "db_password", "type": "String", "value": PLANTED_SECRETS[1]}],
                     signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    write_deployments(server, [dep])
    configure_d(server)
    (signal,) = cloud.heat.signals
    assert signal.body["deploy_status_code"] == 0, signal.body["deploy_stderr"]
    assert signal.body["motd"] == "port 8080"
    assert_no_secret_on_disk_outside_state_but_hook_files(server)

    write_deployments(server, [])
    configure_d(server)
    assert os.listdir(server.path("lib", "heat-config-ansible")) == []  # playbook and variables (with secrets) gone
    assert os.listdir(server.path("run", "heat-config-ansible")) == []


def assert_no_secret_on_disk_outside_state_but_hook_files(sandbox):
    """As the dispatcher's check, except that the ansible variables file (0600, as the original) holds inputs."""
    allowed = (str(sandbox.path("deployed")), str(sandbox.path("run", "heat-config")),
               str(sandbox.path("lib", "heat-config-ansible")))
    for root, _, files in os.walk(sandbox.root):
        for name in files:
            path = os.path.join(root, name)
            if any(s in Path(path).read_text(errors="replace") for s in PLANTED_SECRETS):
                assert path.startswith(allowed), "secret in %s" % path
                assert os.stat(path).st_mode & 0o077 == 0, "secret in a non-private file %s" % path


@pytest.mark.docker
def test_compose_deployment_through_orc_scripts_comes_up_is_signalled_and_goes(server, cloud, docker_engine, tmp_path):
    # The generation a guest of this Debian has: v1 where its docker-compose is installed, else the v2 plugin.
    generation = "v2" if setup_problem("v1") else "v1"
    problem = setup_problem(generation)
    if problem:
        pytest.fail(problem)
    compose = make_compose(generation, tmp_path / "docker-config")
    server.env.update(compose.env, DOCKER_HOST=docker_engine.host)
    svc = {"image": docker_engine.base_image, "command": ["sleep", "300"], "init": True}
    if docker_engine.compose_network_mode:
        svc["network_mode"] = docker_engine.compose_network_mode
    dep = deployment(0, group="docker-compose", name="shop", config={"version": "2.2", "services": {"web": svc}},
                     signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    try:
        write_deployments(server, [dep])
        configure_d(server, "docker-compose")
        (signal,) = cloud.heat.signals
        assert signal.body["deploy_status_code"] == 0, signal.body["deploy_stderr"]
        names = docker_engine.docker("ps", "--format", "{{.Names}}").stdout.decode().split()
        assert compose.container("shop", "web") in names

        write_deployments(server, [])
        configure_d(server, "docker-compose")
        names = docker_engine.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
        assert compose.container("shop", "web") not in names
        assert not server.path("lib", "heat-config-docker-compose", "shop").exists()
    finally:
        docker_engine.docker("rm", "-f", compose.container("shop", "web"), check=False)


@pytest.mark.docker
def test_kubelet_deployment_waits_for_its_pod_and_is_signalled(server, cloud, docker_engine):
    server.env["DOCKER_HOST"] = docker_engine.host
    dep = deployment(0, group="kubelet", options={"poll_period": 0.2, "containers_timeout": 30},
                     config={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cache"},
                             "spec": {"containers": [{"name": "redis", "image": docker_engine.base_image}]}},
                     signal=keystone_inputs(cloud, "HEAT_SIGNAL"))
    write_deployments(server, [dep])
    # What the kubelet would do on seeing the manifest: run the pod's container under its docker name.
    name = "k8s_redis_cache-node1_default_%s_0" % dep["id"]
    docker_engine.docker("run", "-d", "--init", "--name", name, docker_engine.base_image, "sleep", "300")
    try:
        configure_d(server, "kubelet")
        manifest = json.loads(server.path("lib", "kubelet-manifests", dep["id"] + ".json").read_text())
        assert manifest == dep["config"]
        (signal,) = cloud.heat.signals
        assert signal.body["deploy_status_code"] == 0, signal.body["deploy_stderr"]
        assert "Found redis: /" + name in signal.body["deploy_stdout"]
    finally:
        docker_engine.docker("rm", "-f", name, check=False)

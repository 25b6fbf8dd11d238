"""The heat-container-agent image, built and run on the real engine (SPEC §10.5, §10.6; §11.42-45 fixed).

The base is made with make-base-image from the session's debootstrapped root
(no registry), the image with ./build against it, and the container is run by
run_container_agent.sh, the script its systemd unit runs, with every host path
under a scratch directory.  The engine lives in its own network namespace, so
the loopback heat-api-cfn is started inside that namespace: "host network" for
the container is that namespace, and 127.0.0.1 there reaches the server.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from tests.boot_config.conftest import (
    BOOT_CONFIG, MAKE_BASE_IMAGE, SERVER, STACK, describe_requests, dump, occ_section, script_deployment,
)
from tests.servers.base import LoopbackServer
from tests.support.sandbox import assert_no_planted_secret
from tests.support.wait import wait_for_process

pytestmark = [pytest.mark.docker, pytest.mark.image]

HCA = BOOT_CONFIG / "heat-container-agent"
RUN_AGENT = BOOT_CONFIG / "templates/fragments/run_container_agent.sh"
BASE_TAG = "oca-debian-base:trixie"
IMAGE_TAG = "oca-heat-container-agent:test"
CLONE_NEWNET = 0x40000000

SCRIPT = """#!/bin/sh
echo "$deploy_action" >> /var/lib/heat-config/runs.log
printf "in the container: %s" "$greeting" > "$heat_outputs_path.result"
"""


def start_in_netns(server: LoopbackServer, netns) -> None:
    """Bind ``server`` inside the engine's network namespace (setns affects only the calling thread)."""
    if not netns:
        server.start()
        return
    errors = []

    def enter_and_start() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open("/run/netns/" + netns, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into network namespace %s" % netns)
            server.start()  # the listening socket, and the thread serving it, belong to netns
        except Exception as exc:  # reported in the test's thread below
            errors.append(exc)
        finally:
            os.close(fd)

    thread = threading.Thread(target=enter_and_start)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def image_size_mb(engine, tag: str) -> float:
    out = engine.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout
    return int(out.decode().strip()) / 1e6


@pytest.fixture(scope="module")
def agent_image(docker_engine, debian_rootfs):
    env = docker_engine.env()
    started = time.monotonic()
    subprocess.run([str(MAKE_BASE_IMAGE), "--rootfs", str(debian_rootfs), BASE_TAG], env=env, check=True,
                   capture_output=True, timeout=600)
    imported = time.monotonic()
    build = subprocess.run([str(HCA / "build"), "--base", BASE_TAG, "--tag", IMAGE_TAG, "--python", sys.executable],
                           env=env, capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, (build.stdout + build.stderr)[-5000:]
    pins = docker_engine.docker("run", "--rm", "--entrypoint", "cat", IMAGE_TAG,
                                "/usr/local/share/heat-container-agent/constraints.txt").stdout.decode()
    assert re.search(r"^requests==\S+$", pins, re.M) and "os-config-agents" not in pins, "§11.42: versions recorded"
    print("\nheat-container-agent: base imported in %.0f s (%.0f MB), image built in %.0f s (%.0f MB)" % (
        imported - started, image_size_mb(docker_engine, BASE_TAG), time.monotonic() - imported,
        image_size_mb(docker_engine, IMAGE_TAG)))
    return IMAGE_TAG


class Agent:
    """The container as its systemd unit runs it: run_container_agent.sh in the foreground."""

    def __init__(self, engine, image: str, host_root: Path, name: str) -> None:
        self.engine, self.image, self.host_root, self.name = engine, image, host_root, name
        self.proc = None
        self.log = host_root.parent / ("%s.log" % name)

    def start(self) -> "Agent":
        env = self.engine.env()
        env.update(HOST_ROOT=str(self.host_root), DOCKER_SOCKET=self.engine.socket, CONTAINER_NAME=self.name)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(RUN_AGENT), self.image], env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self) -> None:
        """What the unit's ExecStop does; the foreground `docker run --rm` then ends."""
        self.engine.docker("stop", "-t", "5", self.name, check=False)
        if self.proc:
            self.proc.wait(timeout=60)

    def exec(self, *argv: str) -> subprocess.CompletedProcess:
        return self.engine.docker("exec", self.name, *argv, check=False)


def wait_for_agent(predicate: Callable[[], bool], what: str, agent: Agent, timeout: float = 120) -> None:
    wait_for_process(predicate, agent.proc, timeout, what, agent.log.read_text, interval=0.5)


@pytest.fixture
def remove_web(docker_engine):
    yield
    ids = docker_engine.docker("ps", "-aq", "--filter", "label=com.docker.compose.project=30_web").stdout.split()
    if ids:
        docker_engine.docker("rm", "-f", *[i.decode() for i in ids], check=False)


def test_container_agent_runs_deployments_and_keeps_its_state_across_containers(
        docker_engine, agent_image, cfn_server, remove_web, tmp_path):
    cfn_server.stop()  # restarted where the container can reach it
    start_in_netns(cfn_server, docker_engine.netns)
    deployment = script_deployment(cfn_server, "20_in_container", SCRIPT, "deploy_container")
    # A docker-compose deployment (a StructuredConfig, services at the top level), run by the
    # hook in the container on the host's engine through the mounted socket.
    compose = script_deployment(cfn_server, "30_web", "", "deploy_web")
    compose.update(group="docker-compose", outputs=[],
                   config={"web": {"image": docker_engine.base_image, "command": "sleep 300", "net": "none"}})
    occ = occ_section(cfn_server, ["cfn", "local"])
    cfn_server.set_metadata(STACK, SERVER, {"deployments": [deployment, compose], "os-collect-config": occ})
    host = tmp_path / "host"
    init_data = host / "var/lib/heat-cfntools/cfn-init-data"
    init_data.parent.mkdir(parents=True)
    init_data.write_text(dump({"deployments": [], "os-collect-config": occ}))

    agent = Agent(docker_engine, agent_image, host, "hca-%d" % os.getpid()).start()
    try:
        wait_for_agent(lambda: len(cfn_server.signals) == 2, "the deployments' signals", agent)
        signals = {s.arn.rsplit("/", 1)[1]: s.body for s in cfn_server.signals}
        assert signals["deploy_container"]["deploy_status_code"] == 0
        assert signals["deploy_container"]["result"] == "in the container: hello from boot-config"
        assert signals["deploy_web"]["deploy_status_code"] == 0, signals["deploy_web"]["deploy_stderr"]
        web = docker_engine.docker("ps", "--filter", "label=com.docker.compose.project=30_web",
                                   "--format", "{{.State}}").stdout.decode().split()
        assert web == ["running"], "the compose service runs on the host's engine"
        status = agent.exec("heat-config", "status", "--json")
        assert status.returncode == 0, status.stderr
        states = {(e["name"], e["state"], e["signal"]) for e in json.loads(status.stdout)["deployments"]}
        assert states == {("20_in_container", "succeeded", "sent"), ("30_web", "succeeded", "sent")}
        ps = docker_engine.docker("inspect", "--format", "{{.HostConfig.Privileged}}", agent.name).stdout
        assert ps.decode().strip() == "false", "§11.44: not privileged"
    finally:
        agent.stop()

    assert_no_planted_secret(agent.log.read_text(), "the agent container's log")

    # The state is on the host: the agent's rendered config (0600), occ's cache, heat-config's journal.
    conf = host / "var/lib/heat-container-agent/os-collect-config.conf"
    assert "collectors = cfn\n" in conf.read_text() and conf.stat().st_mode & 0o777 == 0o600
    assert (host / "var/lib/os-collect-config/cfn.json").exists()
    assert (host / "var/lib/heat-config/runs.log").read_text() == "CREATE\n"

    # A new container (restart, reboot, new image) polls with the kept config at once and
    # re-runs nothing (§11.43).
    polls = describe_requests(cfn_server)
    agent = Agent(docker_engine, agent_image, host, "hca2-%d" % os.getpid()).start()
    try:
        wait_for_agent(lambda: describe_requests(cfn_server) >= polls + 2, "polling with the kept config", agent)
    finally:
        agent.stop()
    assert (host / "var/lib/heat-config/runs.log").read_text() == "CREATE\n"
    assert len(cfn_server.signals) == 2


def test_build_pins_dependencies_with_a_constraints_file(tmp_path):
    """§11.42: an image's recorded versions (or any pins) make the next build install the same ones."""
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("PyYAML==6.0.1\n")
    wheels = tmp_path / "wheels"
    build = subprocess.run([str(HCA / "build"), "--wheelhouse", str(wheels), "--constraint", str(constraints),
                            "--python", sys.executable], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    names = sorted(p.name for p in wheels.iterdir())
    assert any(n.startswith("PyYAML-6.0.1-") for n in names), names
    assert any(n.startswith("os_config_agents-") for n in names), names

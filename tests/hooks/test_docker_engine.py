"""The test engine itself: it runs real containers from the imported base image, and stops without a trace."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.docker_engine import _mount_points, start_engine


@pytest.mark.docker
def test_engine_runs_a_container_from_the_busybox_image(docker_engine):
    out = docker_engine.docker("run", "--rm", docker_engine.base_image, "echo", "hello from busybox")
    assert out.stdout.decode().strip() == "hello from busybox"


@pytest.mark.docker
def test_a_second_engine_stops_without_leaving_mounts_namespaces_or_processes(docker_engine):
    engine = start_engine()  # docker_engine proved an engine can start here
    root, pid, netns = engine.root, engine.pid, engine.netns
    with open(os.path.join(root, "pid")) as f:
        assert int(f.read()) == pid  # the PID we will stop is dockerd's own
    engine.docker("run", "-d", "--name", "left-running", engine.base_image, "sleep", "300")
    engine.stop()
    assert engine.pid == 0 and not os.path.exists("/proc/%d" % pid)
    assert not [p for p in _mount_points() if p.startswith(root)]
    assert not os.path.exists(root)
    if netns:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert netns not in listed.split()


def test_an_engine_that_cannot_start_skips_its_tests_with_the_reason(tmp_path):
    probe = tmp_path / "test_needs_engine.py"
    probe.write_text("def test_uses_engine(docker_engine):\n    assert False, 'must not run'\n")
    env = dict(os.environ, OCA_TEST_DOCKERD="/bin/false")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.docker_engine", "-p", "no:cacheprovider",
                           "-rs", "-q", "--rootdir", str(tmp_path), str(probe)],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert "container engine unavailable" in done.stdout
    if os.geteuid() == 0:
        assert "did not become ready" in done.stdout  # the reason carries dockerd's exit and log tail

"""The test engine itself: it runs real containers from the imported base image, and stops without a trace."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.docker_engine import _mount_points, start_engine

pytestmark = pytest.mark.docker


def test_engine_runs_a_container_from_the_busybox_image(docker_engine):
    out = docker_engine.docker("run", "--rm", docker_engine.base_image, "echo", "hello from busybox")
    assert out.stdout.decode().strip() == "hello from busybox"


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

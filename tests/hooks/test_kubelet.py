"""The kubelet hook and its companion (SPEC §8.4).

No kubelet can run here, so readiness is tested the way the hook sees a
kubelet's work: real containers on the real engine, named as the kubelet names
them.  The CRI path (``crictl``) is tested only where a real crictl and CRI
runtime exist; Debian 12 packages no crictl, so here it is skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest
from agent_common.deployment_contract import ID_MAX_LEN
from tests.support.sandbox import hook_json

DEP_ID = "fc9070b3-ba4e-4f22-9c3a-5d6e7f809a1b"
POD_PART = "fc9070b3ba4e4f2"  # SPEC §8.4's example


def deployment(containers, options=None, dep_id=DEP_ID, metadata=None):
    config = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": containers}}
    if metadata:
        config["metadata"] = metadata
    return {"id": dep_id, "name": "pod", "group": "kubelet", "config": config, "inputs": [],
            "outputs": [], "options": {"poll_period": 0.2, **(options or {})}}


def run_hook(run_tool, dep, env, timeout=120):
    return hook_json(run_tool, "kubelet", dep, env, timeout)[0]


@pytest.fixture
def engine_env(docker_engine, sandbox):
    # crictl, where one exists, would win: these tests are about the Docker path.
    path = ":".join(p for p in sandbox.env["PATH"].split(":") if not os.path.exists(os.path.join(p, "crictl")))
    return {"DOCKER_HOST": docker_engine.host, "PATH": path}


@pytest.fixture
def kubelet_containers(docker_engine):
    """Start containers under kubelet-style names; remove them afterwards."""
    started = []

    def start(name, running=True):
        args = ["run", "-d", "--init", "--name", name, docker_engine.base_image, "sleep", "300"]
        if not running:
            args = ["create", "--name", name, docker_engine.base_image, "true"]
        docker_engine.docker(*args)
        started.append(name)

    yield start
    if started:
        docker_engine.docker("rm", "-f", *started, check=False)


@pytest.mark.docker
def test_ready_when_images_present_and_containers_running_under_kubelet_names(
        run_tool, engine_env, docker_engine, kubelet_containers):
    dep = deployment([{"name": "web", "image": "oca-busybox"},
                      {"name": "sidecar", "image": docker_engine.base_image}],
                     metadata={"name": "webpod"})
    # The original's docker naming for "web"; dockershim's for "sidecar". They appear while the hook waits.
    timer = threading.Timer(1.5, lambda: (kubelet_containers("k8s_web.1a2b3c4d_%s_default_0" % POD_PART),
                                          kubelet_containers("k8s_sidecar_webpod-node1_default_abc_0")))
    timer.start()
    try:
        out = run_hook(run_tool, dep, engine_env)
    finally:
        timer.join()
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert "Found oca-busybox: oca-busybox:latest" in out["deploy_stdout"]
    assert "Found web: /k8s_web.1a2b3c4d_%s" % POD_PART in out["deploy_stdout"]
    assert "Found sidecar: /k8s_sidecar_webpod-node1" in out["deploy_stdout"]
    assert "(heat-config) [INFO]" in out["deploy_stdout"]
    assert out["deploy_stderr"] == ""


@pytest.mark.docker
def test_stopped_or_misnamed_containers_do_not_count_and_the_timeout_is_reported(
        run_tool, engine_env, docker_engine, kubelet_containers):
    kubelet_containers("k8s_db.1a2b3c4d_%s_x" % POD_PART, running=False)  # created, never started
    kubelet_containers("k8s_db.1a2b3c4d_0000000000000ff_x")  # another pod's
    kubelet_containers("db")
    dep = deployment([{"name": "db", "image": docker_engine.base_image}], options={"containers_timeout": 2})
    started = time.monotonic()
    out = run_hook(run_tool, dep, engine_env)
    assert time.monotonic() - started < 30
    assert out["deploy_status_code"] == 1
    assert "Timed out after 2 seconds waiting for containers: db" in out["deploy_stderr"]
    assert "[ERROR]" in out["deploy_stderr"] and "[INFO]" not in out["deploy_stderr"]


@pytest.mark.docker
def test_two_tags_of_one_image_and_a_missing_image(run_tool, engine_env, docker_engine):
    """SPEC §11.26: the original crashed when two tags matched one image."""
    for tag in ("oca-busybox:one", "oca-busybox:two"):
        docker_engine.docker("tag", docker_engine.base_image, tag)
    try:
        out = run_hook(run_tool, deployment([{"name": "a", "image": "oca-busybox"}],
                                            options={"containers_timeout": 0.5}), engine_env)
        assert "Found oca-busybox:" in out["deploy_stdout"]
        assert "waiting for containers: a" in out["deploy_stderr"]  # got past the images
        out = run_hook(run_tool, deployment([{"name": "a", "image": "not-pulled:1.0"}],
                                            options={"images_timeout": 1}), engine_env)
        assert out["deploy_status_code"] == 1
        assert "Timed out after 1 seconds waiting for images: not-pulled:1.0" in out["deploy_stderr"]
    finally:
        docker_engine.docker("rmi", "oca-busybox:one", "oca-busybox:two", check=False)


def test_unreachable_engine_is_waited_for_then_reported(run_tool, sandbox):
    env = {"DOCKER_HOST": "unix://%s" % sandbox.path("run", "no-docker.sock"),
           "PATH": ":".join(p for p in sandbox.env["PATH"].split(":") if not os.path.exists(p + "/crictl"))}
    out = run_hook(run_tool, deployment([{"name": "a", "image": "x"}], options={"images_timeout": 1}), env)
    assert out["deploy_status_code"] == 1
    assert "cannot reach the container engine" in out["deploy_stderr"]
    assert "Timed out after 1 seconds waiting for images: x" in out["deploy_stderr"]


def test_deployment_timeout_bounds_the_whole_wait(run_tool, sandbox):
    env = {"DOCKER_HOST": "unix://%s" % sandbox.path("run", "no-docker.sock"),
           "PATH": ":".join(p for p in sandbox.env["PATH"].split(":") if not os.path.exists(p + "/crictl"))}
    started = time.monotonic()
    out = run_hook(run_tool, deployment([{"name": "a", "image": "x"}], options={"timeout": 2}), env)
    assert time.monotonic() - started < 20
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].splitlines()[-1] == "timed out after 2 seconds"


def test_bad_id_or_config_is_refused(run_tool, sandbox):
    out = run_hook(run_tool, deployment([{"name": "a", "image": "x"}], dep_id="../../x"), {})
    assert out["deploy_status_code"] != 0 and "deployment on stdin: id " in out["deploy_stderr"]
    dep = deployment([{"image": "no-name"}])
    out = run_hook(run_tool, dep, {})
    assert out["deploy_status_code"] != 0 and "containers" in out["deploy_stderr"]


@pytest.mark.skipif(not shutil.which("crictl"), reason="no crictl here (no Debian suite packages cri-tools); "
                                                        "the CRI path is tested only where a real crictl exists")
def test_cri_path_reads_images_and_containers_through_crictl(run_tool, sandbox):
    info = subprocess.run(["crictl", "images", "-o", "json"], capture_output=True, text=True)
    if info.returncode:
        pytest.skip("crictl exists but reaches no CRI runtime: %s" % info.stderr.strip())
    tags = [t for i in json.loads(info.stdout).get("images") or [] for t in i.get("repoTags") or []]
    if not tags:
        pytest.skip("the CRI runtime has no image to wait for")
    out = run_hook(run_tool, deployment([{"name": "surely-not-running-x1", "image": tags[0]}],
                                        options={"containers_timeout": 1}), {})
    assert "through the CRI runtime" in out["deploy_stdout"]
    assert "Found %s" % tags[0] in out["deploy_stdout"]
    assert "waiting for containers: surely-not-running-x1" in out["deploy_stderr"]


def write_deployments(sandbox, deployments):
    sandbox.write("run/heat-config", deployments if isinstance(deployments, str) else json.dumps(deployments),
                  mode=0o600)


def test_companion_keeps_one_manifest_per_kubelet_deployment(run_tool, sandbox):
    manifests = sandbox.path("lib", "kubelet-manifests")
    env = {"HEAT_KUBELET_MANIFESTS": str(manifests)}
    a = deployment([{"name": "a", "image": "x"}], dep_id="aaaa-1")
    b = deployment([{"name": "b", "image": "y"}], dep_id="bbbb-2")
    other = {"id": "cccc-3", "name": "s", "group": "script", "config": "#!/bin/sh\n"}
    bad = {"id": "../evil", "name": "e", "group": "kubelet", "config": {}}
    write_deployments(sandbox, [a, b, other, bad])
    done = run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(manifests)) == ["aaaa-1.json", "bbbb-2.json"]
    assert stat.S_IMODE(manifests.stat().st_mode) == 0o700
    text = (manifests / "aaaa-1.json").read_text()
    assert json.loads(text) == a["config"] and text == json.dumps(a["config"], indent=2, separators=(",", ": "))
    assert stat.S_IMODE((manifests / "aaaa-1.json").stat().st_mode) == 0o600
    assert "id contains '..'" in done.stderr

    (manifests / "stale.json").write_text("{}")
    (manifests / "notes.txt").write_text("not a manifest")
    write_deployments(sandbox, [b])
    assert run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env).returncode == 0
    assert sorted(os.listdir(manifests)) == ["bbbb-2.json", "notes.txt"]

    # An unreadable file keeps the pods running (the original deleted every manifest first).
    write_deployments(sandbox, "{broken")
    done = run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env)
    assert done.returncode == 0 and "not valid JSON" in done.stderr
    assert sorted(os.listdir(manifests)) == ["bbbb-2.json", "notes.txt"]
    # An empty file means no deployments (SPEC §12.13.9): their pods go.
    write_deployments(sandbox, "")
    assert run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env).returncode == 0
    assert os.listdir(manifests) == ["notes.txt"]


@pytest.mark.parametrize("kind", ["fifo", "not UTF-8", "too deep"])
def test_companion_on_a_deployments_file_it_cannot_read_keeps_the_manifests(run_tool, sandbox, kind):
    """Issue 12 defects 9 and 11: one line naming the file, no hang, no traceback; the pods keep running."""
    manifests = sandbox.path("lib", "kubelet-manifests")
    env = {"HEAT_KUBELET_MANIFESTS": str(manifests)}
    write_deployments(sandbox, [deployment([{"name": "a", "image": "x"}], dep_id="aaaa-1")])
    assert run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env).returncode == 0
    path = sandbox.path("run", "heat-config")
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.write_bytes(b"[\xff]" if kind == "not UTF-8" else b"[" * 100000 + b"]" * 100000)
    done = run_tool("heat-config-hook", ["--refresh", "kubelet"], env=env, timeout=20)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if "[ERROR]" in line]
    assert str(path) in line and "kubelet left as it is" in line
    assert os.listdir(manifests) == ["aaaa-1.json"]


def test_companion_skips_an_id_that_cannot_name_a_manifest(run_tool, sandbox):
    manifests = sandbox.path("lib", "kubelet-manifests")
    long_id = "k" * (ID_MAX_LEN + 1)
    write_deployments(sandbox, [deployment([{"name": "a", "image": "x"}], dep_id=long_id),
                                deployment([{"name": "b", "image": "y"}], dep_id="bbbb-2")])
    done = run_tool("heat-config-hook", ["--refresh", "kubelet"], env={"HEAT_KUBELET_MANIFESTS": str(manifests)})
    assert done.returncode == 0 and "Traceback" not in done.stderr
    assert "is %d characters long" % len(long_id) in done.stderr
    assert os.listdir(manifests) == ["bbbb-2.json"]


def test_companion_missing_deployments_file_does_not_abort(run_tool, sandbox):
    manifests = sandbox.path("lib", "kubelet-manifests")
    done = run_tool("heat-config-hook", ["--refresh", "kubelet"], env={"HEAT_KUBELET_MANIFESTS": str(manifests)})
    assert done.returncode == 0 and "No config file" in done.stderr

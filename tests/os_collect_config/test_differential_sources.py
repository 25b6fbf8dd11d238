"""The original os-collect-config 14.1.0 and ours print the same bytes from the same heat, cfn and zaqar servers.

This proves two things at once: the loopback servers speak the protocols the
original's real client libraries (keystoneclient, heatclient, the Ec2Signer,
zaqarclient over HTTP and websocket) expect, and our collectors read them the
same way.  Ours runs first in each case because the original's zaqar collector
consumes the message and ours, in print mode, does not.
"""
from __future__ import annotations

import subprocess

import pytest

from tests.os_collect_config.conftest import run_original
from tests.support.sandbox import BIN_DIR

METADATA = {"deployments": [{"name": "dep-a", "group": "os-apply-config", "config": {"a": 1}},
                            {"name": "dep-b", "group": "script", "config": "echo"}],
            "café": "naïve ☃", "n": [1, 2.5, None, True]}


def _keystone_args(c, group):
    return ["--%s-auth-url" % group, c.auth_url, "--%s-user-id" % group, c.user_id,
            "--%s-password" % group, c.password, "--%s-project-id" % group, c.project_id]


def _compare(original_occ, sandbox, args):
    common = ["--cachedir", str(sandbox.path("cache", "x")), "--print"]
    ours = subprocess.run([str(BIN_DIR / "os-collect-config"), *common, *args], env=sandbox.env,
                          capture_output=True, text=True, timeout=60)
    theirs = run_original(original_occ, common + args, sandbox.env)
    assert theirs.returncode == 0 and ours.returncode == 0, (theirs.stderr, ours.stderr)
    assert '"dep-a"' in ours.stdout
    assert ours.stdout == theirs.stdout


def test_heat(cloud, sandbox, original_occ):
    cloud.heat.set_metadata("mystack", "server1", METADATA)
    _compare(original_occ, sandbox, _keystone_args(cloud, "heat") + [
        "--heat-stack-id", "mystack", "--heat-resource-name", "server1", "heat"])


def test_cfn(cloud, sandbox, original_occ):
    cloud.cfn.set_metadata("mystack", "server1", METADATA)
    _compare(original_occ, sandbox, [
        "--cfn-metadata-url", cloud.cfn.metadata_url, "--cfn-access-key-id", cloud.access_key,
        "--cfn-secret-access-key", cloud.secret_key, "--cfn-stack-name", "mystack",
        "--cfn-path", "server1.Metadata", "cfn"])


def test_zaqar_http(cloud, sandbox, original_occ):
    cloud.zaqar.post_message(cloud.project_id, "q", METADATA)
    _compare(original_occ, sandbox, _keystone_args(cloud, "zaqar") + ["--zaqar-queue-id", "q", "zaqar"])
    assert cloud.zaqar.messages(cloud.project_id, "q") == []  # the original popped it


@pytest.fixture
def original_with_websockets(original_occ):
    """The original's websocket transport needs websocket-client, which its package does not pull in."""
    pip = original_occ.parent / "pip"
    probe = subprocess.run([str(original_occ.parent / "python"), "-c", "import websocket"], capture_output=True)
    if probe.returncode != 0:
        done = subprocess.run([str(pip), "install", "-q", "--disable-pip-version-check", "websocket-client"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip("cannot install websocket-client for the original: %s" % done.stderr[-300:])
    return original_occ


def test_zaqar_websocket(cloud, sandbox, original_with_websockets):
    cloud.zaqar.post_message(cloud.project_id, "qw", METADATA)
    _compare(original_with_websockets, sandbox, _keystone_args(cloud, "zaqar") + [
        "--zaqar-queue-id", "qw", "--zaqar-use-websockets", "zaqar"])

"""Fixtures for the boot-config and heat-container-agent tests.

The slow ones build a Debian 13 (trixie) root with debootstrap from the mirror apt
uses on this machine (once per test session) and a wheel of this checkout; pip
inside that root reaches the same package index as pip here (its index, CA file
and timeout are copied over), because the root's own CA bundle may not know the
index's certificate.  Commands run in the root with ``chroot`` inside a private
mount namespace (``unshare -m``), so the ``/proc`` mounted for them disappears
with them.  The root shares this machine's network namespace: the loopback
metadata server on 127.0.0.1 is reachable from it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pytest
import yaml

from tests.elements.dib import apt_mirrors
from tests.servers.cfn import CfnServer
from tests.support.sandbox import PLANTED_SECRETS

REPO = Path(__file__).resolve().parents[2]
BOOT_CONFIG = REPO / "boot_config"
#: Debian 13, the current stable: boot-config and the heat-container-agent base are tested on it.
SUITE = "trixie"
MAKE_BASE_IMAGE = BOOT_CONFIG / "heat-container-agent" / "make-base-image"
#: PATH cloud-init's scripts and systemd services get.
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: What an operator gives the pip installer as agent_package (no default: the distribution is not on PyPI).
WHEEL_URL = "https://files.example/os_config_agents-0.1.0-py3-none-any.whl"


def required_params(template: Path) -> Dict[str, str]:
    """The parameters ``template`` has no default for, set as an operator would: agent_package."""
    spec = (yaml.safe_load(template.read_text()).get("parameters") or {}).get("agent_package")
    return {"agent_package": WHEEL_URL} if spec is not None and "default" not in spec else {}


ACCESS_KEY = "boot-config-access"
SECRET_KEY = PLANTED_SECRETS[1]
STACK = "bootstack"
SERVER = "server"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail("%s is missing: scripts/setup installs it (scripts/debian-packages.txt)" % tool)
    return path


@pytest.fixture(scope="session")
def debian_rootfs(tmp_path_factory) -> Path:
    """A pristine minbase root of SUITE, as make-base-image makes it; tests copy it, never change it."""
    if os.geteuid() != 0:
        pytest.skip("debootstrap and chroot need root")
    reuse = os.environ.get("BOOT_CONFIG_ROOTFS")  # a root made earlier the same way, to iterate faster
    if reuse:
        return Path(reuse)
    root = tmp_path_factory.mktemp("debootstrap") / "root"
    # The packages the heat-container-agent base needs: python3 with venv is what boot-config needs too.
    packages = subprocess.run([str(MAKE_BASE_IMAGE), "--suite", SUITE, "--list-packages"], capture_output=True, text=True,
                              check=True).stdout.strip()
    proc = subprocess.run(
        [_need("debootstrap"), "--variant=minbase", "--include=" + packages,
         SUITE, str(root), apt_mirrors(SUITE).get("DIB_DISTRIBUTION_MIRROR", "http://deb.debian.org/debian")],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, "debootstrap failed:\n%s" % (proc.stdout + proc.stderr)[-3000:]
    return root


@pytest.fixture(scope="session")
def agent_wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout (dependencies come from the index when it is installed)."""
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [str(BOOT_CONFIG / "heat-container-agent" / "build"), "--wheelhouse", str(out), "--no-deps",
         "--python", sys.executable],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("os_config_agents-*.whl")
    return wheel


def host_pip_settings() -> Dict[str, str]:
    """pip's effective index URL(s), CA file and timeout here (environment first, then its config files)."""
    settings: Dict[str, str] = {}
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.split(".", 1)[-1]
        settings[name] = value.strip().strip("'\"")
    for name in ("index-url", "extra-index-url", "cert", "default-timeout"):
        env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            settings[name] = env
    return settings


def give_root_host_pip(root: Path) -> None:
    """Make pip inside ``root`` use the index pip uses here, trusting the same CA file."""
    settings = host_pip_settings()
    lines = ["[global]"]
    cert = settings.get("cert")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, root / "etc/ssl/certs/host-pip-ca.pem")
        lines.append("cert = /etc/ssl/certs/host-pip-ca.pem")
    for name in ("index-url", "extra-index-url"):
        urls = [u for u in settings.get(name, "").split() if u.startswith(("http://", "https://"))]
        if urls:
            lines.append("%s = %s" % (name, " ".join(urls)))
    if settings.get("default-timeout"):
        lines.append("timeout = %s" % settings["default-timeout"])
    (root / "etc/pip.conf").write_text("\n".join(lines) + "\n")
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")


def copy_rootfs(source: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True, timeout=300)
    return dest


def in_chroot(root: Path, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``argv`` chrooted in ``root`` with /proc mounted in a private mount namespace."""
    environment = {"PATH": GUEST_PATH, "HOME": "/root", "LC_ALL": "C.UTF-8", "TERM": "dumb"}
    environment.update(env or {})
    script = 'mount -t proc proc "$1/proc" && root=$1 && shift && exec chroot "$root" "$@"'
    return subprocess.run(
        [_need("unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(root),
         "env", "-i", *("%s=%s" % kv for kv in environment.items()), *argv],
        capture_output=True, text=True, timeout=timeout,
    )


def script_deployment(cfn: CfnServer, name: str, script: str, resource: str) -> Dict[str, Any]:
    """A script deployment as Heat puts it in the server's metadata, signalled with CFN_SIGNAL."""
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "group": "script",
        "creation_time": "2026-01-01T00:00:00Z",
        "options": {},
        "config": script,
        "outputs": [{"name": "result", "type": "String", "error_output": False}],
        "inputs": [
            {"name": "greeting", "type": "String", "value": "hello from boot-config"},
            {"name": "deploy_server_id", "type": "String", "value": str(uuid.uuid4())},
            {"name": "deploy_action", "type": "String", "value": "CREATE"},
            {"name": "deploy_stack_id", "type": "String", "value": "%s/%s" % (STACK, cfn.stacks[STACK])},
            {"name": "deploy_resource_name", "type": "String", "value": resource},
            {"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
            {"name": "deploy_signal_id", "type": "String",
             "value": cfn.signed_signal_url(ACCESS_KEY, STACK, cfn.stacks[STACK], resource)},
            {"name": "deploy_signal_verb", "type": "String", "value": "POST"},
        ],
    }


def occ_section(cfn: CfnServer, collectors: List[str]) -> Dict[str, Any]:
    """The ``os-collect-config`` part of the metadata Heat gives a POLL_SERVER_CFN server (SPEC §7.10).

    Heat always lists ``ec2`` first; the tests leave it out, because the EC2 metadata
    address (169.254.169.254) is not on the loopback interface the tests may use.
    """
    return {
        "collectors": collectors,
        "cfn": {
            "metadata_url": cfn.metadata_url,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "stack_name": STACK,
            "path": "%s.Metadata" % SERVER,
        },
    }


@pytest.fixture
def cfn_server():
    server = CfnServer(credentials={ACCESS_KEY: SECRET_KEY})
    server.start()
    server.set_metadata(STACK, SERVER, {})
    try:
        yield server
    finally:
        server.stop()


def describe_requests(cfn: CfnServer) -> int:
    return sum(1 for r in cfn.requests if r.method == "GET" and r.q("Action") == "DescribeStackResource")


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1)

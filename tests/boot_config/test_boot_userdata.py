"""The user-data of install_config_agent_pip.yaml, run for real in a Debian root (SPEC §10.1-10.4).

Heat's part of first boot is reproduced, not faked: the template is rendered
the way Heat renders it, the cfn-init-data part lands where Heat's cloud-init
part-handler writes it, and each script part runs in order as cloud-init's
scripts-user would, chrooted into a debootstrapped Debian 13 (trixie).  The agent
is installed from a wheel of this checkout (its dependencies from the package
index), polls a loopback heat-api-cfn on 127.0.0.1, runs the script deployment
it finds there and signals it back.  The start part runs the real systemctl in
the root, told it is offline (as in an image build) since no systemd runs here.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.boot_config.conftest import (
    BOOT_CONFIG, PLANTED_SECRETS, SERVER, STACK, copy_rootfs, describe_requests, dump, give_root_host_pip,
    in_chroot, occ_section, script_deployment,
)
from tests.boot_config.heat_userdata import parts, render

pytestmark = pytest.mark.image

SCRIPT = """#!/bin/sh
echo "$greeting" > /root/boot-config-deployed
printf "done: %s" "$greeting" > "$heat_outputs_path.result"
echo "ran at first boot"
"""


def run_part(root: Path, index: int, text: str, env=None):
    """Run one user-data script part the way cloud-init does: as an executable file."""
    part = root / "var/lib/cloud/instance/scripts" / ("part-%03d" % index)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_text(text)
    part.chmod(0o700)
    return in_chroot(root, ["/" + str(part.relative_to(root))], env=env)


def assert_no_secret(text: str, where: str) -> None:
    for secret in PLANTED_SECRETS:
        assert secret not in text, "planted secret leaked into %s" % where


@pytest.fixture(scope="module")
def systemd_rootfs(debian_rootfs, tmp_path_factory) -> Path:
    """The session's Debian root plus systemd's tools, as a cloud image has them (made once here)."""
    root = copy_rootfs(debian_rootfs, tmp_path_factory.mktemp("systemd") / "root")
    give_root_host_pip(root)
    setup = in_chroot(root, ["sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
                                         "apt-get install -y -qq --no-install-recommends systemd"])
    assert setup.returncode == 0, setup.stderr[-3000:]
    (root / "run/systemd/system").mkdir(parents=True, exist_ok=True)  # what a booted systemd leaves
    return root


@pytest.fixture
def guest_root(systemd_rootfs, tmp_path) -> Path:
    """A fresh copy of that root for one test."""
    return copy_rootfs(systemd_rootfs, tmp_path / "root")


def test_user_data_installs_configures_collects_and_starts_the_agent(guest_root, agent_wheel, cfn_server):
    root = guest_root
    (root / "tmp/agent").mkdir(parents=True)
    shutil.copy(agent_wheel, root / "tmp/agent")

    # What Heat serves once the deployment exists, and what it put in the user-data at boot.
    deployment = script_deployment(cfn_server, "10_hello", SCRIPT, "deploy_hello")
    occ = occ_section(cfn_server, ["cfn", "local"])
    cfn_server.set_metadata(STACK, SERVER, {"deployments": [deployment], "os-collect-config": occ})
    init_data = root / "var/lib/heat-cfntools/cfn-init-data"
    init_data.parent.mkdir(parents=True)
    init_data.write_text(dump({"deployments": [], "os-collect-config": occ}))

    user_data = render(BOOT_CONFIG / "templates/install_config_agent_pip.yaml",
                       {"agent_package": "/tmp/agent/" + agent_wheel.name})
    install, configure, start = [p for p in parts(user_data) if p.startswith("#!")]

    # 1. install: our distribution in a virtualenv, every command linked onto PATH.
    started = time.monotonic()
    result = run_part(root, 1, install)
    assert result.returncode == 0, result.stderr[-4000:]
    print("install part: %.1f s" % (time.monotonic() - started))
    occ_link = root / "usr/local/bin/os-collect-config"
    assert occ_link.is_symlink()
    assert os.readlink(occ_link) == "/opt/stack/venvs/os-config-agents/bin/os-collect-config"
    for command in ("os-refresh-config", "os-apply-config", "dib-run-parts", "heat-config", "heat-config-notify"):
        assert (root / "usr/local/bin" / command).is_symlink(), command

    # 2. configure: files laid out, first pass renders the config, second pass collects and deploys.
    result = run_part(root, 2, configure)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert_no_secret(result.stdout + result.stderr, "the configure part's output (cloud-init-output.log)")
    assert re.search(r"^%s +10_hello +script +CREATE +succeeded +0 .* sent" % deployment["id"], result.stdout, re.M), \
        "the configure part ends with heat-config status:\n" + result.stdout[-2000:]

    conf = root / "etc/os-collect-config.conf"
    text = conf.read_text()
    assert conf.stat().st_mode & 0o777 == 0o600
    assert "collectors = cfn\ncollectors = local\n" in text
    assert "metadata_url = %s\n" % cfn_server.metadata_url in text
    assert "path = server.Metadata\n" in text
    for path, mode in (("usr/libexec/os-refresh-config/configure.d/20-os-apply-config", 0o700),
                       ("usr/libexec/os-refresh-config/configure.d/55-heat-config", 0o700),
                       ("var/lib/heat-config/hooks/script", 0o755)):
        assert (root / path).stat().st_mode & 0o777 == mode, path
    assert os.readlink(root / "usr/bin/heat-config-notify") == "/usr/local/bin/heat-config-notify"
    deployments_file = root / "run/heat-config/heat-config"  # /var/run is a link to /run
    assert deployments_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(deployments_file.read_text())[0]["id"] == deployment["id"]

    assert describe_requests(cfn_server) >= 1, "the second pass polled heat-api-cfn"
    assert json.loads((root / "var/lib/os-collect-config/cfn.json").read_text())["deployments"][0]["name"] == "10_hello"
    assert (root / "root/boot-config-deployed").read_text() == "hello from boot-config\n"
    assert len(cfn_server.signals) == 1
    signal = cfn_server.signals[0]
    assert signal.arn.endswith("/resources/deploy_hello")
    assert signal.body["deploy_status_code"] == 0
    assert signal.body["result"] == "done: hello from boot-config"
    assert "ran at first boot" in signal.body["deploy_stdout"]

    status = in_chroot(root, ["heat-config", "status", "--json"])
    assert status.returncode == 0, status.stderr
    (entry,) = json.loads(status.stdout)["deployments"]
    assert (entry["id"], entry["state"], entry["signal"]) == (deployment["id"], "succeeded", "sent")

    # 3. start: a unit for the command where pip put it, enabled; the rendered config kept.
    before = hashlib.sha256(conf.read_bytes()).hexdigest()
    result = run_part(root, 3, start, env={"SYSTEMD_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    unit = root / "etc/systemd/system/os-collect-config.service"
    assert "ExecStart=/usr/local/bin/os-collect-config\n" in unit.read_text()
    assert (root / "etc/systemd/system/multi-user.target.wants/os-collect-config.service").is_symlink()
    verify = in_chroot(root, ["systemd-analyze", "verify", "/etc/systemd/system/os-collect-config.service"])
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert hashlib.sha256(conf.read_bytes()).hexdigest() == before, "§11.41: the config is not reset"

    # The agent as the service runs it: nothing new, so nothing re-runs and nothing is signalled twice.
    again = in_chroot(root, ["os-collect-config", "--one-time"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(cfn_server.signals) == 1


def test_container_agent_user_data_installs_an_enabled_unit_that_verifies(guest_root):
    """SPEC §10.5: the cloud-config part writes the helpers, the script part the unit, after docker."""
    root = guest_root
    # The host's engine, as a container host has it: its CLI and its unit.
    shutil.copy("/usr/bin/docker", root / "usr/bin/docker")
    for unit in ("docker.service", "docker.socket"):
        shutil.copy(Path("/lib/systemd/system") / unit, root / "lib/systemd/system" / unit)

    cloud_config, start = parts(render(BOOT_CONFIG / "templates/install_container_agent.yaml",
                                       {"agent_image": "heat-container-agent:1"}))
    for entry in yaml.safe_load(cloud_config)["write_files"]:  # what cloud-init's write_files does
        target = root / entry["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(entry["content"])
        target.chmod(int(entry["permissions"], 8))
    result = run_part(root, 1, start, env={"SYSTEMD_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    unit = (root / "etc/systemd/system/heat-container-agent.service").read_text()
    assert "ExecStart=/opt/container_agent/run_container_agent.sh heat-container-agent:1\n" in unit
    assert "Requires=docker.service\n" in unit
    for name in ("docker.service", "heat-container-agent.service"):
        assert (root / "etc/systemd/system/multi-user.target.wants" / name).is_symlink(), name
    verify = in_chroot(root, ["systemd-analyze", "verify", "/etc/systemd/system/heat-container-agent.service"])
    assert verify.returncode == 0, verify.stdout + verify.stderr

"""A real image: disk-image-create builds Debian 13 (trixie) with our elements, then the image is inspected (SPEC §9.7).

diskimage-builder comes from PyPI into its own virtualenv; the agents are the
wheel of this checkout (DIB_OS_CONFIG_AGENTS_SOURCE). Every file of the build
(diskimage-builder's venv, caches, locks, the image, its extracted root) lives
in one temporary directory that is removed afterwards; the build's loop device
is released by diskimage-builder and checked here. Inside the image's root
(chroot, sharing this machine's network) os-collect-config polls a loopback
Swift temp URL once, and the script deployment it finds is run and signalled
back to that server, as Heat's POLL_TEMP_URL / TEMP_URL_SIGNAL transports do.

OCA_IMAGE_TAR=<path>: the built tar is copied there, and when it already
exists it is inspected instead of building again (for working on the checks).
"""
from __future__ import annotations

import configparser
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.elements.conftest import TYPICAL_CHAIN
from tests.elements.dib import ELEMENTS, ChrootRoot, assert_build_left_nothing, can_use_overlay_roots, disk_image_create
from tests.support.terminal import say
from tests.servers.swift import SwiftServer

pytestmark = pytest.mark.image

#: The hooks the image gets and the one-shot run exercises (ansible: a hook whose tool the build installs).
HOOK_GROUPS = ["script", "ansible"]
#: debian-minimal plus the chain an operator lists for Heat software deployments.
ELEMENT_CHAIN = ["debian-minimal"] + TYPICAL_CHAIN + ["heat-config-ansible"]
BUILD_TIMEOUT_S = 1500
#: Debian 13, the current stable (the VM suite's qcow2 images stay on RELEASE, Debian 12).
IMAGE_RELEASE = "trixie"


@pytest.fixture(scope="module")
def build_dir() -> Iterator[Path]:
    why_not = can_use_overlay_roots()
    if why_not:
        pytest.skip(why_not)
    base = Path(tempfile.mkdtemp(prefix="oca-image-"))
    try:
        yield base
    finally:
        assert_build_left_nothing(base)
        shutil.rmtree(base, ignore_errors=True)


def _build(build_dir: Path, agents_wheel: Path, request: pytest.FixtureRequest) -> None:
    """disk-image-create into build_dir/image.tar; prints the build time and the image size."""
    build = disk_image_create(build_dir, agents_wheel, ELEMENT_CHAIN, "tar", timeout=BUILD_TIMEOUT_S,
                              release=IMAGE_RELEASE)
    say(request, build.summary())


@pytest.fixture(scope="module")
def built_image(build_dir: Path, agents_wheel: Path, request: pytest.FixtureRequest) -> ChrootRoot:
    """Build the image once for this module (OCA_IMAGE_TAR: keep it there, or reuse it), then extract it."""
    tarball = build_dir / "image.tar"
    reuse = os.environ.get("OCA_IMAGE_TAR", "")
    if reuse and os.path.exists(reuse):  # a developer re-running the inspection: no second build
        shutil.copyfile(reuse, tarball)
    else:
        _build(build_dir, agents_wheel, request)
        if reuse:
            shutil.copyfile(tarball, reuse)

    root = build_dir / "root"
    root.mkdir()
    # Everything but the kernel and its modules, which the inspection does not need.
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--exclude=./boot", "--exclude=./usr/lib/modules",
                    "-xf", str(tarball)], check=True, timeout=600)
    tarball.unlink()
    return ChrootRoot(root)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_console_scripts_run_in_the_image(built_image: ChrootRoot) -> None:
    assert built_image.path("/etc/debian_version").read_text().startswith("13"), "not a Debian 13 image"
    python = built_image.run(["/opt/stack/venvs/os-config-agents/bin/python", "--version"])
    assert python.stdout.startswith("Python 3.13."), python.stdout + python.stderr
    for name in ("os-collect-config", "os-refresh-config", "os-apply-config", "os-config-applier",
                 "heat-config", "heat-config-hook", "dib-run-parts", "heat-config-notify",
                 "heat-config-rebuild-deployed"):
        result = built_image.run(["/usr/local/bin/" + name, "--help"])
        assert result.returncode == 0, "%s --help: %s" % (name, result.stderr[-2000:])
        assert "usage" in result.stdout.lower(), name
    # Without their arguments, the originals' shell tools print their usage and exit 1; ours do the same.
    for name in ("dib-run-parts", "heat-config-notify"):
        result = built_image.run(["/usr/local/bin/" + name], input="")
        assert result.returncode == 1 and "Usage" in result.stdout + result.stderr, (name, result.stderr)
    link = os.readlink(built_image.path("/usr/local/bin/os-collect-config"))
    assert link == "/opt/stack/venvs/os-config-agents/bin/os-collect-config"


def test_spec_9_7_files_are_in_the_image(built_image: ChrootRoot) -> None:
    orc = "/usr/libexec/os-refresh-config"
    for phase in ("pre-configure.d", "configure.d", "post-configure.d", "migration.d"):
        assert built_image.path(orc + "/" + phase).is_dir()
    for script in ("configure.d/20-os-apply-config", "configure.d/55-heat-config",
                   "post-configure.d/99-refresh-completed"):
        assert _mode(built_image.path(orc + "/" + script)) & 0o111, script
    templates = "/usr/libexec/os-apply-config/templates"
    for template in ("etc/os-collect-config.conf", "etc/os-collect-config.conf.oac",
                     "var/run/heat-config/heat-config"):
        assert built_image.path(templates + "/" + template).is_file(), template
    for group in HOOK_GROUPS:
        shim = built_image.path("/var/lib/heat-config/hooks/" + group)
        assert _mode(shim) == 0o755 and "heat-config-hook " + group in shim.read_text()
    assert built_image.path("/usr/bin/ansible-playbook").exists(), "heat-config-ansible did not install ansible"
    for tool in ("heat-config-notify", "heat-config-rebuild-deployed"):
        assert built_image.path("/usr/local/bin/" + tool).is_symlink()
    conf = built_image.path("/etc/os-collect-config.conf")
    assert _mode(conf) == 0o600 and "command=os-refresh-config" in conf.read_text()


def test_service_is_installed_enabled_and_verifies_in_the_image(built_image: ChrootRoot) -> None:
    unit = "/usr/lib/systemd/system/os-collect-config.service"
    shipped = ELEMENTS / "os-collect-config" / "init-scripts" / "systemd" / "os-collect-config.service"
    assert built_image.path(unit).read_text() == shipped.read_text()
    wants = built_image.path("/etc/systemd/system/multi-user.target.wants/os-collect-config.service")
    assert os.readlink(wants) in (unit, unit[len("/usr"):])
    result = built_image.run(["systemd-analyze", "verify", unit])
    assert result.returncode == 0, result.stderr
    assert "os-collect-config" not in result.stderr, result.stderr


PLAYBOOK = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - copy:
        content: "ansible {{ who }}\\n"
        dest: /root/hello-from-ansible
    - copy:
        content: "done-{{ who }}"
        dest: "{{ heat_outputs_path }}.result"
"""


def _deployment(id_: str, group: str, config: str, signal_url: str) -> dict:
    return {"id": id_, "name": "hello-" + group, "group": group, "config": config, "options": {},
            "outputs": [{"name": "result"}],
            "inputs": [
                {"name": "who", "type": "String", "value": "image"},
                {"name": "deploy_server_id", "value": "server-1"},
                {"name": "deploy_action", "value": "CREATE"},
                {"name": "deploy_stack_id", "value": "stack-1/1"},
                {"name": "deploy_resource_name", "value": "deployment-" + group},
                {"name": "deploy_signal_transport", "value": "TEMP_URL_SIGNAL"},
                {"name": "deploy_signal_id", "value": signal_url},
                {"name": "deploy_signal_verb", "value": "PUT"},
            ]}


def test_one_shot_collects_and_runs_deployments(built_image: ChrootRoot) -> None:
    """occ --one-time → orc → oac renders the deployments and occ.conf → dispatcher → hooks → signals."""
    swift = SwiftServer().start()
    try:
        metadata_url = swift.temp_url("stack-1", "server-metadata")
        signal_urls = {g: swift.temp_url("stack-1", "deployment-" + g, method="PUT") for g in HOOK_GROUPS}
        configs = {
            "script": "#!/bin/sh\necho \"hello $who\" > /root/hello-from-script\n"
                      "printf done-%s \"$who\" > \"$heat_outputs_path.result\"\necho deployed\n",
            "ansible": PLAYBOOK,
        }
        swift.put_object("stack-1", "server-metadata", {
            "os-collect-config": {"collectors": ["request"], "request": {"metadata_url": metadata_url}},
            "deployments": [_deployment("5d6e6c1e-0000-4000-8000-0000000%s" % g[:5], g, configs[g], signal_urls[g])
                            for g in HOOK_GROUPS],
        })
        result = built_image.run(["os-collect-config", "--one-time", "--request-metadata-url", metadata_url,
                                  "request"], timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        for group in HOOK_GROUPS:
            signal = swift.get_object("stack-1", "deployment-" + group)
            assert signal is not None, "no signal PUT for %s:\n%s" % (group, output[-6000:])
            data = json.loads(signal)
            assert data["deploy_status_code"] == 0, data
            assert data["result"] == "done-image"
            assert built_image.path("/root/hello-from-" + group).read_text() == "%s image\n" % (
                "hello" if group == "script" else group)
            marker = "/var/lib/heat-config/deployed/5d6e6c1e-0000-4000-8000-0000000%s.json" % group[:5]
            assert built_image.path(marker).exists()
        assert json.loads(swift.get_object("stack-1", "deployment-script"))["deploy_stdout"] == "deployed\n"
        conf = built_image.path("/etc/os-collect-config.conf")
        assert _mode(conf) == 0o600
        rendered = configparser.ConfigParser(interpolation=None)
        rendered.read_string(conf.read_text())
        assert rendered.get("request", "metadata_url") == metadata_url
        assert rendered.get("DEFAULT", "command") == "os-refresh-config"
        for url in [metadata_url] + list(signal_urls.values()):
            assert url.split("temp_url_sig=")[1].split("&")[0] not in output, "a temp URL signature was logged"
    finally:
        swift.stop()

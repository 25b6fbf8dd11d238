"""Fixtures of the VM suite: images built once per session, real guests under QEMU, the real control plane.

``-m "not vm"`` skips the suite. OCA_VM_IMAGE_DIR=<dir>: each built image is kept there as <kind>.qcow2,
and one that already exists is booted instead of building again (for working on the scenarios by hand).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import pytest

from tests.elements.dib import assert_build_left_nothing, build_agents_wheel, can_use_overlay_roots
from tests.support.terminal import say
from tests.vm.guest import Guest
from tests.vm.image import build_vm_image

#: What the suite needs of this machine (scripts/debian-packages.txt installs them).
TOOLS = ("qemu-system-x86_64", "qemu-img", "genisoimage", "socat", "partx", "unshare")
#: Control plane services a guest reaches (through its loopback forwarders).
GUEST_SERVICES = ("keystone", "heat", "cfn", "swift", "zaqar", "zaqar-websocket")


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)


class Images:
    """Each kind of image built once per session, on first use (or taken from OCA_VM_IMAGE_DIR)."""

    def __init__(self, request: pytest.FixtureRequest, base: Path):
        self.request = request
        self.base = base
        self.keep = os.environ.get("OCA_VM_IMAGE_DIR", "")
        self.built: Dict[str, Path] = {}
        self.wheel: Optional[Path] = None

    def agents_wheel(self) -> Path:
        """This checkout's wheel, built once: what the images and the guests' package index install."""
        if self.wheel is None:
            self.wheel = build_agents_wheel(self.base)
        return self.wheel

    def get(self, kind: str) -> Path:
        if kind in self.built:
            return self.built[kind]
        kept = Path(self.keep) / ("%s.qcow2" % kind) if self.keep else None
        if kept is not None and kept.exists():
            say(self.request, "vm: booting the %s image kept in %s" % (kind, kept))
            self.built[kind] = kept
            return kept
        build_dir = self.base / kind
        build_dir.mkdir()
        build = build_vm_image(kind, build_dir, self.agents_wheel(), self.base)
        assert_build_left_nothing(build_dir)
        say(self.request, "vm: %s image: %s" % (kind, build.summary()))
        image = build.image
        if kept is not None:
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, kept)
        self.built[kind] = image
        return image


@pytest.fixture(scope="session")
def vm_images(request: pytest.FixtureRequest) -> Iterator[Images]:
    if os.geteuid() != 0:
        pytest.skip("needs root: loop devices, mount namespaces and chroot for the image build")
    why_not = can_use_overlay_roots()
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    assert not (why_not or missing), (why_not or "%s missing: scripts/setup installs them "
                                      "(scripts/debian-packages.txt)" % ", ".join(missing))
    base = Path(tempfile.mkdtemp(prefix="oca-vm-image-"))
    try:
        yield Images(request, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def forward_ports(control_plane) -> List[int]:
    return [control_plane["ports"][name] for name in GUEST_SERVICES]


@pytest.fixture(scope="module")
def make_guest(vm_images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Guest]]:
    """``make_guest(kind, name, config_drive, ports)``: a guest on a fresh overlay of that image; all stop at the end."""
    guests: List[Guest] = []

    def make(kind: str, name: str, config_drive: Path, ports: Sequence[int]) -> Guest:
        guest = Guest(tmp_path_factory.mktemp("guest-" + name), vm_images.get(kind), config_drive, ports)
        guests.append(guest)
        return guest

    yield make
    for guest in guests:
        guest.stop()

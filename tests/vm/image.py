"""The VM suite's images: diskimage-builder's ``vm`` element, bootable qcow2.

Two kinds, as users get servers: ``agents`` has our elements baked in (the image path); ``boot-config``
has only cloud-init and python3, and gets the agents at first boot from Heat's boot-config user-data.
Both carry the test-only oca-vm-harness element (elements/ here).

The build is tests/elements/dib.py's ``disk_image_create`` run inside a private mount namespace
(stand-ins/enter) whose kpartx and dmsetup are stand-ins: this kernel has no device-mapper, so the
loop device's partitions are added with ``partx`` and given the /dev/mapper names diskimage-builder
expects.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, NamedTuple, Sequence

from tests.elements.conftest import TYPICAL_CHAIN
from tests.elements.dib import DibBuild, disk_image_create

HERE = Path(__file__).resolve().parent
BUILD_TIMEOUT_S = 1800


class ImageKind(NamedTuple):
    elements: Sequence[str]
    packages: Sequence[str] = ()
    settings: Dict[str, str] = {}


IMAGES = {
    # debian-minimal made bootable, the chain an operator lists for Heat software deployments, the harness.
    "agents": ImageKind(["vm", "debian-minimal"] + TYPICAL_CHAIN + ["heat-config-ansible", "oca-vm-harness"]),
    # A cloud image with nothing of ours: cloud-init reading the config drive, python3 with venv.
    "boot-config": ImageKind(["vm", "debian-minimal", "cloud-init-datasources", "oca-vm-harness"],
                             packages=["cloud-init", "python3-venv", "ca-certificates"],
                             settings={"DIB_CLOUD_INIT_DATASOURCES": "ConfigDrive"}),
}


def build_vm_image(kind: str, build_dir: Path, agents_wheel: Path, tools_dir: Path) -> DibBuild:
    """Build ``build_dir/image.qcow2`` of one of ``IMAGES`` (diskimage-builder and its cache in ``tools_dir``)."""
    image = IMAGES[kind]
    return disk_image_create(build_dir, agents_wheel, image.elements, "qcow2", timeout=BUILD_TIMEOUT_S,
                             tools_dir=tools_dir,
                             elements_path=[HERE / "elements"], packages=image.packages, settings=image.settings,
                             wrapper=["unshare", "--mount", str(HERE / "stand-ins" / "enter")])

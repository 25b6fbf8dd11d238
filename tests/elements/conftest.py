"""Fixtures for the element tests: a wheel of this checkout, and a root with the typical element chain installed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.elements.dib import REPO, OverlayRoot, build_agents_wheel, can_use_overlay_roots, merge_elements

#: What an operator lists for Heat software deployments (SPEC §9.7).
TYPICAL_CHAIN = ["os-collect-config", "os-refresh-config", "os-apply-config", "heat-config", "heat-config-script"]

#: Hook elements whose install.d needs what only a real build installs (kubelet from its apt repository).
NEEDS_A_REAL_BUILD = frozenset({"heat-config-kubelet"})


@pytest.fixture(scope="session")
def agents_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """os-config-agents built from the working tree, as DIB_OS_CONFIG_AGENTS_SOURCE gives it to the build."""
    return build_agents_wheel(tmp_path_factory.mktemp("wheel"))


def run_build_phases(root: OverlayRoot, env: dict) -> None:
    """extra-data.d beside the root, then install.d and post-install.d inside it, as disk-image-create does.

    Between them, what diskimage-builder's dib-init-system element does for our
    elements: units from init-scripts/systemd go to /usr/lib/systemd/system.
    """
    steps = [
        ("extra-data", lambda: root.run(
            ["/bin/bash", "-c", 'for s in "$TMP_HOOKS_PATH"/extra-data.d/*; do [ ! -e "$s" ] || "$s" || exit; done'],
            env, chroot=False)),
        ("install", lambda: root.run_phase("install", env)),
        ("init-scripts", lambda: root.run(["/bin/sh", "-c", "d=/tmp/in_target.d/init-scripts/systemd; "
                                           "[ ! -d $d ] || cp -RP $d/. /usr/lib/systemd/system/"], env)),
        ("post-install", lambda: root.run_phase("post-install", env)),
    ]
    for name, step in steps:
        if name in ("install", "post-install") and not (root.hooks / (name + ".d")).is_dir():
            continue
        result = step()
        assert result.returncode == 0, "%s failed:\n%s\n%s" % (name, result.stdout[-4000:], result.stderr[-4000:])


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory: pytest.TempPathFactory, agents_wheel: Path) -> OverlayRoot:
    """The typical chain (plus every hook element with a built-in hook) installed into a temporary root."""
    why_not = can_use_overlay_roots()
    if why_not:
        pytest.skip(why_not)
    import hooks

    base = tmp_path_factory.mktemp("installed")
    hook_elements = ["heat-config-%s" % g for g in hooks.groups()]
    chain = TYPICAL_CHAIN + [
        e for e in hook_elements
        if (REPO / "elements" / e).is_dir() and e not in TYPICAL_CHAIN and e not in NEEDS_A_REAL_BUILD
    ]
    root = OverlayRoot(base, merge_elements(chain, base / "hooks"))
    run_build_phases(root, {"DIB_OS_CONFIG_AGENTS_SOURCE": str(agents_wheel)})
    root.chain = chain  # type: ignore[attr-defined]
    return root

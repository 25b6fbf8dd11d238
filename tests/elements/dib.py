"""Run our diskimage-builder elements the way disk-image-create does, without building an image.

``merge_elements`` reproduces diskimage-builder's element merge (every element's
directories copied into one hooks tree, duplicate hook names refused), and
``OverlayRoot`` is a temporary root: an overlay of this machine's ``/`` whose
writes land in a directory of the test, entered with ``chroot`` inside a private
mount namespace. The element scripts run in it unchanged, with the same paths
and environment variables as in a real build, and every file they write can be
inspected afterwards; the host's /etc, /usr, /var and /opt are never touched,
and the mounts disappear with the namespace. ``ChrootRoot`` enters a built
image's extracted root the same way.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
ELEMENTS = REPO / "elements"

#: Elements our element-deps name that diskimage-builder itself provides.
DIB_ELEMENTS = frozenset({"dib-init-system", "ensure-venv", "package-installs"})

#: What diskimage-builder gives the in-chroot phases (plus what the distro element sets).
CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DIB_INIT_SYSTEM": "systemd",
    "DISTRO_NAME": "debian",
    "DIB_RELEASE": "bookworm",
    "DIB_DEBUG_TRACE": "0",
}

# Mount the overlay and what a chroot needs, then run "$@" (chrooted unless OVL_NO_CHROOT).
_ENTER = r"""
set -e
m=$OVL_MERGED
if [ -n "$OVL_UPPER" ]; then
    mount -t overlay overlay -o "lowerdir=/,upperdir=$OVL_UPPER,workdir=$OVL_WORK" "$m"
fi
mkdir -p "$m/dev" "$m/proc" "$m/sys"
mount --rbind /dev "$m/dev"
mount -t proc proc "$m/proc"
mount --rbind /sys "$m/sys"
if [ -n "$OVL_HOOKS" ]; then
    mkdir -p "$m/tmp/in_target.d"
    mount --bind "$OVL_HOOKS" "$m/tmp/in_target.d"
    mount -o remount,ro,bind "$m/tmp/in_target.d"
fi
if [ -n "$OVL_NO_CHROOT" ]; then
    exec "$@"
fi
exec chroot "$m" "$@"
"""


def element_deps(name: str) -> List[str]:
    path = ELEMENTS / name / "element-deps"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def element_closure(names: Iterable[str]) -> List[str]:
    """``names`` and every element of ours they depend on, in first-seen order."""
    seen: List[str] = []
    todo = list(names)
    while todo:
        name = todo.pop(0)
        if name in seen or name in DIB_ELEMENTS:
            continue
        if not (ELEMENTS / name).is_dir():
            raise LookupError("element %s is neither ours nor a known diskimage-builder element" % name)
        seen.append(name)
        todo.extend(element_deps(name))
    return seen


class DuplicateHook(Exception):
    pass


def merge_elements(names: Sequence[str], dest: Path) -> Path:
    """diskimage-builder's generate_hooks: copy each element's directories into one tree.

    A second element with an entry of the same name directly inside a phase
    directory is refused (diskimage-builder exits); deeper entries are merged,
    the later element winning.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in element_closure(names):
        for sub in sorted((ELEMENTS / name).iterdir()):
            if not sub.is_dir() or sub.name in ("tests", "__pycache__"):
                continue
            target = dest / sub.name
            target.mkdir(exist_ok=True)
            for entry in sorted(sub.iterdir()):
                if (target / entry.name).is_file():
                    raise DuplicateHook("%s/%s/%s" % (name, sub.name, entry.name))
                if entry.is_dir():
                    shutil.copytree(entry, target / entry.name, symlinks=True, dirs_exist_ok=True)
                else:
                    shutil.copy2(entry, target / entry.name, follow_symlinks=False)
    return dest


class ChrootRoot:
    """A directory holding a whole root file system (an extracted image), entered with chroot.

    /dev, /proc and /sys are mounted for each command inside a private mount
    namespace, so nothing stays mounted when the command ends.
    """

    upper: Optional[Path] = None
    work: Optional[Path] = None

    def __init__(self, root: Path, hooks: Optional[Path] = None) -> None:
        self.merged = root
        self.hooks = hooks

    def path(self, abs_path: str) -> Path:
        """Where the root's ``abs_path`` is, seen from the host."""
        return self.merged / abs_path.lstrip("/")

    def run(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        *,
        chroot: bool = True,
        timeout: float = 600,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess:
        """Run ``argv`` inside the root (or, with ``chroot=False``, beside it as extra-data.d runs)."""
        control = {
            "OVL_MERGED": str(self.merged),
            "OVL_UPPER": str(self.upper or ""),
            "OVL_WORK": str(self.work or ""),
            "OVL_HOOKS": str(self.hooks or ""),
            "OVL_NO_CHROOT": "" if chroot else "1",
        }
        child_env: Dict[str, str] = dict(CHROOT_ENV)
        if not chroot:  # extra-data.d: on the host, told where the image root and the hooks are
            child_env.update(TMP_MOUNT_PATH=str(self.merged), TMP_HOOKS_PATH=str(self.hooks or ""))
        child_env.update(env or {})
        command = ["/usr/bin/env", "-i"] + ["%s=%s" % kv for kv in sorted(child_env.items())] + list(argv)
        full = ["unshare", "--mount", "--propagation", "private", "bash", "-c", _ENTER, "overlay-root"] + command
        host_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        host_env.update(control)
        return subprocess.run(full, env=host_env, capture_output=True, text=True, timeout=timeout, input=input)

    def run_phase(self, phase: str, env: Optional[Mapping[str, str]] = None, **kw) -> subprocess.CompletedProcess:
        """Run one phase directory of the merged hooks with dib-run-parts, as disk-image-create does."""
        # Our dib-run-parts (the project venv is visible inside the overlay): DIB's order and environment.d.
        runner = str(Path(sys.executable).parent / "dib-run-parts")
        return self.run([runner, "/tmp/in_target.d/%s.d" % phase], env, **kw)


class OverlayRoot(ChrootRoot):
    """A copy-on-write root over this machine's ``/`` for running element scripts; ``upper`` holds what they wrote."""

    def __init__(self, base: Path, hooks: Optional[Path] = None, on_top_of: Optional["OverlayRoot"] = None) -> None:
        super().__init__(base / "merged", hooks)
        self.upper = base / "upper"
        self.work = base / "work"
        if on_top_of is not None:
            # Start from another root's writes: a copy, since overlayfs refuses one upper stacked on another here.
            subprocess.run(["cp", "-a", str(on_top_of.upper), str(self.upper)], check=True)
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True, exist_ok=True)

    def path(self, abs_path: str) -> Path:
        """Where the root's ``abs_path`` is, seen from the host: what the scripts wrote, else the host's own."""
        assert self.upper is not None
        written = self.upper / abs_path.lstrip("/")
        return written if os.path.lexists(written) else Path(abs_path)


def can_use_overlay_roots() -> Optional[str]:
    """None when this machine can run OverlayRoot, else why not (for a skip message)."""
    if os.geteuid() != 0:
        return "needs root (mount namespaces, overlayfs, chroot)"
    for tool in ("unshare", "chroot", "mount"):
        if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return "needs %s" % tool
    return None

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

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
ELEMENTS = REPO / "elements"

DIB_VERSION = "3.43.0"
RELEASE = "bookworm"

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


def apt_mirrors(release: str = RELEASE) -> Dict[str, str]:
    """The Debian and Debian-security mirrors apt on this machine uses (deb822 .sources and one-line .list).

    For a suite apt does not list here (trixie on a bookworm machine), the mirrors of the suite it does list.
    """
    entries: List[tuple] = []  # (uri, suites)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in Path(path).read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
                for uri in fields.get("uris", "").split():
                    entries.append((uri, fields.get("suites", "").split()))
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                words = [w for w in line.split() if not w.startswith("[")] if line.startswith("deb ") else []
                if len(words) >= 3 and "]" not in words[1]:
                    entries.append((words[1], [words[2]]))
    mirrors: Dict[str, str] = {}
    fallback: Dict[str, str] = {}  # the mirrors of the suite apt uses here, which serve the other suites too
    for uri, suites in entries:
        if release in suites:
            mirrors.setdefault("DIB_DISTRIBUTION_MIRROR", uri)
        if release + "-security" in suites or release + "/updates" in suites:
            mirrors.setdefault("DIB_DEBIAN_SECURITY_MIRROR", uri)
        if any("-" not in suite and "/" not in suite for suite in suites):
            fallback.setdefault("DIB_DISTRIBUTION_MIRROR", uri)
        if any(suite.endswith(("-security", "/updates")) for suite in suites):
            fallback.setdefault("DIB_DEBIAN_SECURITY_MIRROR", uri)
    for key, uri in fallback.items():
        mirrors.setdefault(key, uri)
    return mirrors


def free_loop_device() -> str:
    found = subprocess.run(["losetup", "--find"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


def build_agents_wheel(dest: Path) -> Path:
    """os-config-agents built from the working tree into ``dest``, as DIB_OS_CONFIG_AGENTS_SOURCE gives it to a build.

    Built from a copy: pip builds in place, and the checkout is shared with other runs.
    """
    tree = dest / "tree"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(
        ".git", ".cache", ".venv", ".venv-*", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", "bench"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
         "-w", str(dest), str(tree)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, "pip wheel failed:\n%s" % built.stderr[-4000:]
    shutil.rmtree(tree)
    (wheel,) = dest.glob("os_config_agents-*.whl")
    return wheel


class DibBuild(NamedTuple):
    """A finished disk-image-create run."""

    image: Path
    elements: Sequence[str]
    seconds: float
    mirror: str
    release: str

    def summary(self) -> str:
        return "image build: Debian %s, %s in %.0f s, %s %.0f MB (%s)" % (
            self.release, " ".join(self.elements), self.seconds, self.image.name, self.image.stat().st_size / 1e6,
            self.mirror)


def disk_image_create(build_dir: Path, agents_wheel: Path, elements: Sequence[str], image_type: str, *,
                      timeout: float, elements_path: Sequence[Path] = (), wrapper: Sequence[str] = (),
                      packages: Sequence[str] = (), settings: Optional[Mapping[str, str]] = None,
                      tools_dir: Optional[Path] = None, release: str = RELEASE) -> DibBuild:
    """diskimage-builder (from PyPI, in its own venv) builds ``build_dir/image.<type>``.

    Every file of the build (locks, temp, log, image) stays in ``build_dir``; ``wrapper`` is a command
    the build runs under (the VM suite's private mount namespace with its device-mapper stand-ins);
    ``packages`` are disk-image-create's ``-p`` list, ``settings`` more DIB_* variables for the elements.
    ``tools_dir`` (default ``build_dir``) holds diskimage-builder's venv and image cache, so that builds
    sharing it install diskimage-builder and debootstrap the base once.
    """
    missing = [tool for tool in ("debootstrap", "sudo", "losetup") if not shutil.which(tool)]
    assert not missing, "the image build needs %s (scripts/debian-packages.txt)" % ", ".join(missing)
    assert free_loop_device(), "diskimage-builder needs one free loop device, even for tar output"
    mirrors = apt_mirrors(release)
    assert "DIB_DISTRIBUTION_MIRROR" in mirrors, "no apt source for %s on this machine" % release
    mirrors.setdefault("DIB_DEBIAN_SECURITY_MIRROR", mirrors["DIB_DISTRIBUTION_MIRROR"] + "-security")
    tools = tools_dir or build_dir
    venv = tools / "dib-venv"
    if not (venv / "bin" / "disk-image-create").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "diskimage-builder==%s" % DIB_VERSION], check=True, timeout=600)
    for d in ("locks", "tmp"):
        (build_dir / d).mkdir(exist_ok=True)
    (tools / "cache").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIB_", "ELEMENTS_PATH", "OS_", "HEAT_"))}
    env.update(mirrors)
    env.update(
        PATH="%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % (venv / "bin"),
        ELEMENTS_PATH=":".join(str(p) for p in [ELEMENTS, *elements_path]),
        DIB_RELEASE=release,
        DIB_NO_TMPFS="1",
        DIB_LOCKFILES=str(build_dir / "locks"),
        TMPDIR=str(build_dir / "tmp"),
        DIB_OS_CONFIG_AGENTS_SOURCE=str(agents_wheel),
    )
    env.update(settings or {})
    # pip in the image must trust what pip here trusts (this machine's HTTPS may go through a proxy's CA).
    host_bundle = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE") or "/etc/ssl/certs/ca-certificates.crt"
    if os.path.isfile(host_bundle):
        env["DIB_OS_CONFIG_AGENTS_PIP_CERT"] = host_bundle
    output = build_dir / "image"
    argv = list(wrapper) + ["disk-image-create", "--image-cache", str(tools / "cache"), "-t", image_type,
                            "-o", str(output)] + (["-p", ",".join(packages)] if packages else []) + list(elements)
    log_path = build_dir / "build.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        result = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                cwd=str(build_dir))
    took = time.monotonic() - started
    tail = log_path.read_text(errors="replace")[-6000:]
    assert result.returncode == 0, "disk-image-create failed (%s):\n%s" % (result.returncode, tail)
    return DibBuild(output.with_suffix("." + image_type), list(elements), took, mirrors["DIB_DISTRIBUTION_MIRROR"],
                    release)


def loop_devices_of(path: Path) -> str:
    listing = subprocess.run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"],
                             capture_output=True, text=True).stdout
    return "\n".join(line for line in listing.splitlines() if str(path) in line)


def mounts_under(path: Path) -> List[str]:
    with open("/proc/self/mountinfo") as mounts:
        return [line.split()[4] for line in mounts if line.split()[4].startswith(str(path))]


def assert_build_left_nothing(build_dir: Path) -> None:
    """No mount and no loop device of a build in ``build_dir`` outlives it."""
    assert not mounts_under(build_dir), "mounts left behind: %s" % mounts_under(build_dir)
    assert not loop_devices_of(build_dir), "loop devices left behind: %s" % loop_devices_of(build_dir)

"""The original tools (PyPI releases) in their own cached virtualenv, for differential tests and benchmarks.

Never installed into the project's venv: the originals' console scripts carry the
same names as ours. Several test areas share the one venv, so installs are
serialised with a lock file and only what is missing is installed.
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import List, Sequence

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "bench" / ".venv-originals"


def ensure_originals(requirements: Sequence[str], marker_bins: Sequence[str], venv: Path = VENV) -> Path:
    """The venv's bin directory, with ``requirements`` installed unless every ``marker_bins`` is already there.

    ``venv`` names another cached venv under bench/ (``.venv-*``, git-ignored) for a tool
    that must not share the originals' (salt for the salt hook's tests).
    """
    bin_dir = venv / "bin"
    lock_dir = venv.parent / ".cache"  # git-ignored, as the venv is
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ("%s.lock" % venv.name.lstrip(".")), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (bin_dir / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not all((bin_dir / name).exists() for name in marker_bins):
            subprocess.run(
                [str(bin_dir / "pip"), "install", "-q", "--disable-pip-version-check", *requirements],
                check=True,
            )
    return bin_dir


#: Runs the original os-apply-config's real code, believing it is not root, so that it does not
#: append to /var/log/os-apply-config.log; our own package of the same name is kept off sys.path.
OAC_SHIM = (
    "import os, sys\n"
    "sys.path = [p for p in sys.path if p not in ('', os.getcwd())]\n"
    "os.geteuid = lambda: 65534\n"
    "from os_apply_config.apply_config import main\n"
    "sys.exit(main(['os-apply-config'] + sys.argv[1:]))\n"
)


def original_oac_argv(bin_dir: Path) -> List[str]:
    """The command line that starts the original os-apply-config from the originals' venv."""
    return [str(bin_dir / "python"), "-c", OAC_SHIM]


def orc_oac_originals() -> Path:
    """os-apply-config 14.1.0, os-refresh-config 14.1.0 and dib-utils (dib-run-parts)."""
    return ensure_originals(
        ["os-apply-config==14.1.0", "os-refresh-config==14.1.0", "dib-utils"],
        ["os-apply-config", "os-refresh-config", "dib-run-parts"],
    )

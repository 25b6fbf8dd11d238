"""scripts/python-matrix needs root (debootstrap, unshare -m, chroot): without it, it says so and does nothing."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="drops root with setpriv: needs root")
def test_python_matrix_refuses_to_run_without_root():
    done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           str(REPO / "scripts" / "python-matrix")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "python-matrix: needs root (debootstrap, unshare -m and chroot); run it as root\n"
    assert done.stdout == ""

"""The agents run in guests as old as RHEL 9 (Python 3.9): no newer syntax or library call may slip in.

Two checks: vermin reads every shipped module for 3.10+ features, and every shipped
module is really imported by the Python running the suite. scripts/python-matrix runs
this suite under Python 3.9 (Debian 11) and 3.13 (Debian 13) as well, with the
dependencies pip resolves for each, so the import check runs on the oldest and newest
Python we promise.
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["agent_common", "os_collect_config", "os_refresh_config", "os_apply_config", "heat_config", "hooks"]


def shipped_modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__main__":
                continue  # importing it would run the command; the package's own import is checked
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts)


def test_vermin_finds_no_feature_newer_than_3_9():
    targets = [str(REPO / p) for p in PACKAGES if (REPO / p).is_dir()]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "vermin"), "--no-tips", "--violations", "-t=3.9-",
         "--backport", "dataclasses", *targets],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_module_imports_on_this_python():
    """A fresh interpreter imports each module: a syntax or library call this Python lacks fails here."""
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run([sys.executable, "-c", code, *shipped_modules()], cwd=str(REPO), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

"""The agents run in guests as old as RHEL 9 (Python 3.9): no newer syntax or library call may slip in.

Two checks: vermin reads every shipped module for 3.10+ features, and, where the
machine has a Python 3.9 (pyenv keeps one), every shipped module is really
imported by it with the core dependencies installed.
"""
import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["agent_common", "os_collect_config", "os_refresh_config", "os_apply_config", "heat_config", "hooks"]
CORE_DEPS = ["requests", "keystoneauth1", "PyYAML", "Jinja2", "pystache", "websocket-client"]


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


def find_python39():
    candidates = ["/usr/bin/python3.9"] + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9")))
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def test_vermin_finds_no_feature_newer_than_3_9():
    targets = [str(REPO / p) for p in PACKAGES if (REPO / p).is_dir()]
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "vermin"), "--no-tips", "--violations", "-t=3.9-",
         "--backport", "dataclasses", *targets],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_module_imports_on_python_3_9(tmp_path_factory):
    python39 = find_python39()
    if python39 is None:
        pytest.skip("no Python 3.9 interpreter on this machine (vermin check still ran)")
    venv = REPO / "bench" / ".venv-py39"
    if not (venv / "bin" / "python").exists():
        subprocess.run([python39, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *CORE_DEPS],
                   check=True, capture_output=True)
    modules = list(shipped_modules())
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code, *modules], cwd=str(REPO),
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-3000:]

"""README "Install": the distribution is not on PyPI, so the README builds a wheel and installs that.

The commands of its code block are the ones run here: the wheel is built from (a copy of)
this checkout, installed into a new virtualenv, and its commands answer.  Dependencies are
not installed (``--no-deps``): what is checked is the wheel the README names and installs.
"""
from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.elements.dib import build_agents_wheel
from tests.support.readme import blocks_of

REPO = Path(__file__).resolve().parents[1]


def install_block() -> str:
    return next(b.text for b in blocks_of("sh") if "pip wheel" in b.text)


def test_readme_installs_a_wheel_built_from_the_checkout_not_a_pypi_name(tmp_path):
    block = install_block()
    wheel_name = "os_config_agents-%s-py3-none-any.whl" % version("os-config-agents")
    assert "pip wheel --no-deps --wheel-dir dist ." in block
    assert "pip install ./%s" % wheel_name in block
    assert not re.search(r"pip install os-config-agents\b", block), "not on PyPI: that line cannot work"

    wheel = build_agents_wheel(tmp_path / "dist")
    assert wheel.name == wheel_name  # the file the README tells the reader to copy and install

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
                                "--disable-pip-version-check", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    for command in re.search(r"for c in (.*?); do", block, re.S).group(1).replace("\\", " ").split():
        assert (venv / "bin" / command).is_file(), "the link loop names %s, which the wheel must install" % command
    answered = subprocess.run([str(venv / "bin" / "python"), "-c",
                               "import importlib.metadata as m; print(m.version('os-config-agents'))"],
                              capture_output=True, text=True, timeout=60)
    assert answered.stdout.strip() == version("os-config-agents"), answered.stderr

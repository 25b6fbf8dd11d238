"""Fixtures for os-collect-config tests: sandboxed runs of the real command, loopback servers, the original."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Sequence

import pytest

from tests.servers.ec2 import Ec2Server
from tests.servers.swift import SwiftServer
from tests.support.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
ORIGINALS_VENV = REPO / "bench" / ".venv-originals"
ORIGINAL_VERSION = "14.1.0"


class Occ:
    """Runs our os-collect-config with its cache, backup and default source paths inside the sandbox."""

    def __init__(self, sandbox: Sandbox, run_tool) -> None:
        self.sandbox = sandbox
        self.run_tool = run_tool
        self.cachedir = sandbox.path("cache")
        self.backup = sandbox.path("backup", "occ")
        self.local_dir = sandbox.path("lib", "local-data")
        self.heat_local = sandbox.path("lib", "cfn-init-data")

    def base_args(self) -> List[str]:
        return ["--cachedir", str(self.cachedir), "--backup-cachedir", str(self.backup),
                "--heat_local-path", str(self.heat_local), "--local-path", str(self.local_dir)]

    def __call__(self, *args: str, timeout: float = 60, env=None):
        return self.run_tool("os-collect-config", self.base_args() + list(args), timeout=timeout, env=env)

    def popen(self, *args: str, env=None) -> subprocess.Popen:
        merged = dict(self.sandbox.env)
        merged.update(env or {})
        return subprocess.Popen([str(Path(sys.executable).parent / "os-collect-config")] + self.base_args()
                                + list(args), env=merged, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=str(self.sandbox.root))

    def cache_json(self, name: str):
        return json.loads(self.cachedir.joinpath(name).read_text())

    def write_local(self, name: str, value, mode: int = 0o644) -> Path:
        self.local_dir.mkdir(parents=True, exist_ok=True)
        self.local_dir.chmod(0o755)
        path = self.local_dir / name
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        path.chmod(mode)
        return path


class Running:
    """The real agent in continuous mode, logging at DEBUG to a file the test reads."""

    def __init__(self, occ, *args: str, argv0_module: bool = False) -> None:
        self.log = occ.sandbox.path("log", "occ.log")
        full = occ.base_args() + ["--log-file", str(self.log), "--debug"] + list(args)
        env = dict(occ.sandbox.env)
        if argv0_module:
            cmd = [sys.executable, "-m", "os_collect_config"] + full
        else:
            cmd = [str(Path(sys.executable).parent / "os-collect-config")] + full
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     cwd=str(occ.sandbox.root))

    def lines(self) -> List[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines())

    def sleeps(self, after: str = "", nth: int = 0) -> List[float]:
        """The logged sleeps, optionally only those after the ``nth`` line containing ``after``."""
        lines = self.lines()
        if after:
            hits = [i for i, line in enumerate(lines) if after in line]
            lines = lines[hits[nth]:] if len(hits) > nth else []
        return [float(m.group(1)) for m in (re.search(r"Sleeping ([0-9.]+) seconds", l) for l in lines) if m]

    def stop(self) -> str:
        """Stop the agent (SIGTERM, then SIGKILL) and return what it wrote to stderr (tracebacks land there)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode("utf-8", "replace")


@pytest.fixture
def running():
    started: List[Running] = []

    def start(occ, *args, **kw) -> Running:
        r = Running(occ, *args, **kw)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def occ(sandbox: Sandbox, run_tool) -> Occ:
    return Occ(sandbox, run_tool)


@pytest.fixture
def swift() -> Iterator[SwiftServer]:
    server = SwiftServer().start()
    yield server
    server.stop()


@pytest.fixture
def ec2() -> Iterator[Ec2Server]:
    server = Ec2Server({
        "local-ipv4": "10.0.0.5",
        "hostname": "vm1",
        "placement": {"availability-zone": "nova"},
        "public-keys": {"0=mykey": {"openssh-key": "ssh-rsa AAAA test"}},
    }).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def original_occ() -> Path:
    """The original os-collect-config 14.1.0 in its own virtualenv (gitignored); skip only if PyPI is unreachable."""
    exe = ORIGINALS_VENV / "bin" / "os-collect-config"
    if exe.exists():
        return exe
    if not (ORIGINALS_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINALS_VENV)], check=True)
    proc = subprocess.run([str(ORIGINALS_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                           "os-collect-config==%s" % ORIGINAL_VERSION], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("cannot install the original os-collect-config from PyPI: %s" % proc.stderr[-300:])
    return exe


def run_original(exe: Path, args: Sequence[str], env: dict) -> subprocess.CompletedProcess:
    """The original logs to stdout; send its logs to /dev/null so stdout holds only what it prints."""
    merged = dict(env, LC_ALL="C")  # its local collector cannot restore a C.UTF-8 locale
    return subprocess.run([str(exe), "--log-file", os.devnull, *args], env=merged, capture_output=True,
                          text=True, timeout=60)

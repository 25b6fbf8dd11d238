#!/usr/bin/env python3
"""The heat-agents dispatcher, notifier and script hook against ours, side by side in one run.

Workload: 100 ``script`` deployments, each with an input and an output, each
signalled (CFN_SIGNAL, pre-signed POST) to a loopback heat-api-cfn that checks
every signature.  Two figures per implementation:

1. from cold: an empty deployed dir, so every deployment runs and is signalled;
2. nothing new: the same file again, everything already deployed.

The originals are not vendored: their three files (``55-heat-config``,
``heat-config-notify``, ``hook-script.py``) are read at run time from a snapshot
of github.com/openstack/heat-agents (``--heat-agents``: a checkout or a bare git
dir), and run with the originals' virtualenv (bench/.venv-originals, which has
their PyYAML and requests).  Ours is the ``heat-config`` of this checkout's venv,
with nothing configured: built-in script hook, in-process signals.

Usage: bench/dispatch.py [--deployments N] [--cold-samples N] [--idle-samples N] [--heat-agents PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.collect import OURS, install_ours  # noqa: E402  (one way to install ours for benchmarks)
from tests.servers.cfn import CfnServer  # noqa: E402

DEFAULT_SNAPSHOT = "/work/.mirror/openstack+heat-agents/repo"
ORIGINAL_FILES = {
    "55-heat-config": "heat-config/os-refresh-config/configure.d/55-heat-config",
    "heat-config-notify": "heat-config/bin/heat-config-notify",
    "hook-script": "heat-config-script/install.d/hook-script.py",
}
ORIGINALS_VENV = REPO / "bench" / ".venv-originals"
OURS_BIN = OURS / "bin"
ACCESS, SECRET = "AKIA-bench", "bench-secret-key"


def read_original(snapshot: str, rel: str) -> str:
    """A file of the heat-agents snapshot: from a work tree, or with git from a bare/mirror repository."""
    tree = Path(snapshot) / rel
    if tree.exists():
        return tree.read_text()
    proc = subprocess.run(["git", "--git-dir", snapshot, "show", "HEAD:%s" % rel], capture_output=True, text=True)
    if proc.returncode:
        sys.exit("cannot read %s from %s: %s" % (rel, snapshot, proc.stderr.strip()))
    return proc.stdout


def original_python() -> str:
    python = ORIGINALS_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINALS_VENV)], check=True)
    check = subprocess.run([str(python), "-c", "import yaml, requests"], capture_output=True)
    if check.returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "PyYAML", "requests"], check=True)
    return str(python)


def install_originals(snapshot: str, into: Path) -> Dict[str, str]:
    """The three original programs, runnable, with their shebang pointing at the originals' interpreter."""
    python = original_python()
    into.mkdir(parents=True)
    paths = {}
    for name, rel in ORIGINAL_FILES.items():
        text = read_original(snapshot, rel)
        body = text.split("\n", 1)[1] if text.startswith("#!") else text
        path = into / name
        path.write_text("#!%s\n%s" % (python, body))
        path.chmod(0o755)
        paths[name] = str(path)
    return paths


def deployments(cfn: CfnServer, n: int) -> List[dict]:
    out = []
    for i in range(n):
        resource = "deploy_%03d" % i
        out.append({
            "id": "bench-%08d-0000-4000-8000-000000000000" % i,
            "name": "%03d_bench" % i,
            "group": "script",
            "options": {},
            "creation_time": "2024-03-05T09:12:44Z",
            "config": "#!/bin/sh\necho \"hello $who\"\necho done > $heat_outputs_path.result\n",
            "outputs": [{"name": "result", "type": "String", "error_output": False}],
            "inputs": [
                {"name": "who", "type": "String", "value": "bench"},
                {"name": "deploy_server_id", "type": "String", "value": "server"},
                {"name": "deploy_action", "type": "String", "value": "CREATE"},
                {"name": "deploy_stack_id", "type": "String", "value": "bench/1e4c0000-stack"},
                {"name": "deploy_resource_name", "type": "String", "value": resource},
                {"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
                {"name": "deploy_signal_id", "type": "String",
                 "value": cfn.signed_signal_url(ACCESS, "bench", "1e4c0000-stack", resource)},
                {"name": "deploy_signal_verb", "type": "String", "value": "POST"},
            ],
        })
    return out


class Site:
    """One sandbox: the deployments file, state and script dirs, and how to run one dispatcher pass."""

    def __init__(self, root: Path, argv: List[str], extra_env: Dict[str, str]) -> None:
        self.root = root
        self.argv = argv
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("HEAT_", "OS_", "VIRTUAL_ENV", "PYTHON"))}
        self.env.update(
            PATH="%s:%s" % (OURS_BIN, os.environ.get("PATH", "/usr/bin:/bin")),
            HEAT_SHELL_CONFIG=str(root / "heat-config"),
            HEAT_CONFIG_DEPLOYED=str(root / "deployed"),
            HEAT_CONFIG_DEPLOYED_OLD=str(root / "deployed-old"),
            HEAT_SCRIPT_WORKING=str(root / "script-working"),
            HEAT_SCRIPT_OUTPUTS=str(root / "script-outputs"),
        )
        self.env.update(extra_env)

    def reset(self, text: str) -> None:
        for d in ("deployed", "script-working", "script-outputs"):
            shutil.rmtree(self.root / d, ignore_errors=True)
        (self.root / "heat-config").write_text(text)

    def run(self) -> "tuple[float, float]":
        """One dispatcher pass: wall seconds, and CPU seconds of it and the children it waited for."""
        start = time.perf_counter()
        proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            sys.exit("%s failed:\n%s" % (self.argv[0], stderr.decode()[-2000:]))
        return elapsed, usage.ru_utime + usage.ru_stime


def cold(site: Site, cfn: CfnServer, text: str, n: int, samples: int) -> List["tuple[float, float]"]:
    """From cold: an empty state dir each time; every deployment must be signalled exactly once."""
    out = []
    for _ in range(samples):
        site.reset(text)
        with cfn.lock:
            cfn.signals.clear()
        out.append(site.run())
        if len(cfn.signals) != n:
            sys.exit("%s: %d signals received, expected %d" % (site.argv[0], len(cfn.signals), n))
    return out


def median(samples: List["tuple[float, float]"], index: int) -> float:
    return statistics.median(s[index] for s in samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--cold-samples", type=int, default=3)
    parser.add_argument("--idle-samples", type=int, default=11)
    parser.add_argument("--heat-agents", default=DEFAULT_SNAPSHOT,
                        help="heat-agents checkout or git dir (default: the fetched snapshot)")
    args = parser.parse_args()

    install_ours()
    cfn = CfnServer({ACCESS: SECRET}, "bench-project").start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    try:
        originals = install_originals(args.heat_agents, tmp / "originals")
        hooks = tmp / "original-hooks"
        hooks.mkdir()
        shutil.copy(originals["hook-script"], hooks / "script")
        text = json.dumps(deployments(cfn, args.deployments))
        original = Site(tmp / "original", [originals["55-heat-config"]],
                        {"HEAT_CONFIG_HOOKS": str(hooks), "HEAT_CONFIG_NOTIFY": originals["heat-config-notify"]})
        ours = Site(tmp / "ours", [str(OURS_BIN / "heat-config")], {})
        for site in (original, ours):
            site.root.mkdir()
        cold_runs = {label: cold(site, cfn, text, args.deployments, args.cold_samples)
                     for label, site in (("original", original), ("ours", ours))}
        idle_runs: Dict[str, list] = {"original": [], "ours": []}
        signals_before = len(cfn.signals)
        for _ in range(args.idle_samples):  # interleaved, so a change in machine load hits both alike
            for label, site in (("original", original), ("ours", ours)):
                idle_runs[label].append(site.run())
        if len(cfn.signals) != signals_before:
            sys.exit("a run with nothing new signalled again")
        n = args.deployments
        print("heat-config dispatch: %d script deployments, CFN signals to a loopback endpoint "
              "(medians; %d cold / %d idle samples)" % (n, args.cold_samples, args.idle_samples))
        print("%-34s %12s %12s %9s" % ("", "original", "ours", "ratio"))
        rows = (("from cold, wall", cold_runs, 0, 1), ("from cold, wall per deployment", cold_runs, 0, n),
                ("from cold, CPU", cold_runs, 1, 1), ("nothing new, wall", idle_runs, 0, 1),
                ("nothing new, CPU", idle_runs, 1, 1))
        for label, runs, index, per in rows:
            o, u = median(runs["original"], index) / per, median(runs["ours"], index) / per
            print("%-34s %11.3fs %11.3fs %8.1fx" % (label, o, u, o / u))
    finally:
        cfn.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

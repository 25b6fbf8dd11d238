#!/usr/bin/env python3
"""Start-up of one hook run: ``heat-config-hook script < deployment.json`` against the original script hook.

One ``script`` deployment (an input, an output, a one-line shell script) is fed
on stdin to each command N times; the figure is the median wall time of a whole
run, interpreter start-up included, which is what a hook shim or a dispatcher
pays per deployment.  The original is ``hook-script.py`` of
github.com/openstack/heat-agents, read at run time from a snapshot
(``--heat-agents``) and run with the originals' virtualenv, as bench/dispatch.py
does; ours is the ``heat-config-hook`` of a regular (not editable) install of
this checkout.

Usage: bench/hook_start.py [--runs N] [--heat-agents PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.collect import install_ours  # noqa: E402  (one way to install ours for benchmarks)
from bench.dispatch import DEFAULT_SNAPSHOT, ORIGINAL_FILES, install_originals  # noqa: E402

DEPLOYMENT = {
    "id": "bench-00000000-0000-4000-8000-000000000000",
    "name": "000_bench",
    "group": "script",
    "options": {},
    "config": "#!/bin/sh\necho \"hello $who\"\necho done > $heat_outputs_path.result\n",
    "outputs": [{"name": "result", "type": "String", "error_output": False}],
    "inputs": [{"name": "who", "type": "String", "value": "bench"}],
}


def median_ms(argv: List[str], env: Dict[str, str], runs: int) -> float:
    """The median wall time of ``argv`` with the deployment on stdin; every run must print a success."""
    payload = json.dumps(DEPLOYMENT).encode()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, input=payload, env=env, capture_output=True)
        times.append(time.perf_counter() - start)
        result = json.loads(proc.stdout or b"null")
        if proc.returncode or not isinstance(result, dict) or result.get("deploy_status_code") != 0:
            sys.exit("%s failed: %s\n%s" % (argv[0], proc.stdout[-500:], proc.stderr[-2000:]))
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per command (default 30)")
    parser.add_argument("--heat-agents", default=DEFAULT_SNAPSHOT,
                        help="heat-agents checkout or git dir (default: the fetched snapshot)")
    args = parser.parse_args()

    ours = install_ours() / "heat-config-hook"
    with tempfile.TemporaryDirectory(prefix="bench-hook-start-") as tmp_name:
        tmp = Path(tmp_name)
        original = install_originals(args.heat_agents, tmp / "originals")["hook-script"]
        figures = {}
        for label, argv in (("heat-agents hook-script.py", [original]),
                            ("ours: heat-config-hook script", [str(ours), "script"])):
            site = tmp / ("original" if argv[0] == original else "ours")
            env = dict(os.environ, HEAT_SCRIPT_WORKING=str(site / "working"), HEAT_SCRIPT_OUTPUTS=str(site / "outputs"))
            median_ms(argv, env, 2)  # warm the page cache and any byte-code caches
            figures[label] = median_ms(argv, env, args.runs)
    print("hook start-up, one script deployment, median of %d runs (%s):" % (args.runs, ORIGINAL_FILES["hook-script"]))
    for label, ms in figures.items():
        print("  %-32s %7.1f ms" % (label, ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())

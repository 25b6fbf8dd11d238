#!/usr/bin/env python3
"""Instruction counts (valgrind's callgrind) of ours and the originals on the same input.

    .venv/bin/python bench/instructions.py

Wall-clock figures on a shared machine swing by tens of percent from run to run;
the number of instructions a process executes does not, so a change of a few
percent in start-up or render cost shows here when the timing benches cannot see
it.  Counted: os-apply-config rendering bench/apply.py's 500 templates into an
empty root, the same render again with nothing changed, and ``--help``; and one
script deployment through ``heat-config-hook script`` against heat-agents'
hook-script.py (bench/hook_start.py's deployment).  Each count is the process
itself (all its threads), not the children it starts.  Needs valgrind
(apt-get install -y valgrind).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.apply import build_templates, metadata  # noqa: E402  (the same input as the timing benches)
from bench.collect import install_ours  # noqa: E402
from bench.dispatch import DEFAULT_SNAPSHOT, install_originals  # noqa: E402
from bench.hook_start import DEPLOYMENT  # noqa: E402
from os_apply_config.cache import RACY_NS  # noqa: E402
from tests.support.originals import orc_oac_originals, original_oac_argv  # noqa: E402


def instructions(argv: List[str], env: Dict[str, str], cwd: Path, stdin: bytes = b"") -> float:
    """Millions of instructions ``argv`` executes; it must succeed."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + argv,
                          input=stdin, env=env, cwd=str(cwd), capture_output=True)
    found = re.search(rb"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        sys.exit("%s failed (exit %s):\n%s" % (argv, proc.returncode, proc.stderr[-2000:].decode()))
    return int(found.group(1)) / 1e6


def count_apply(work: Path, tools: Dict[str, List[str]]) -> Dict[str, Dict[str, float]]:
    templates = work / "templates"
    build_templates(templates)
    time.sleep(RACY_NS / 1e9)  # settled templates, as in an image (see bench/apply.py)
    md = work / "md.json"
    md.write_text(json.dumps(metadata()))
    env = dict(os.environ, OS_APPLY_CONFIG_LOG_FILE="", LC_ALL="C.UTF-8", OS_APPLY_CONFIG_STATE_DIR=str(work / "state"))
    env.pop("OS_CONFIG_FILES", None)
    counts = {}
    for name, argv in tools.items():
        out = work / ("out-" + name)
        out.mkdir()
        args = argv + ["-t", str(templates), "-o", str(out), "-m", str(md), "--fallback-metadata"]
        counts[name] = {"render": instructions(args, env, work), "unchanged": instructions(args, env, work),
                        "help": instructions(argv + ["--help"], env, work)}
    return counts


def count_hook(work: Path, tools: Dict[str, List[str]]) -> Dict[str, float]:
    payload = json.dumps(DEPLOYMENT).encode()
    counts = {}
    for name, argv in tools.items():
        env = dict(os.environ, HEAT_SCRIPT_WORKING=str(work / name / "working"),
                   HEAT_SCRIPT_OUTPUTS=str(work / name / "outputs"))
        counts[name] = instructions(argv, env, work, payload)
    return counts


def main() -> int:
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py needs valgrind (apt-get install -y valgrind)")
    ours = install_ours()
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp_name:
        tmp = Path(tmp_name)
        apply = count_apply(tmp / "apply", {"original": original_oac_argv(orc_oac_originals()),
                                            "ours": [str(ours / "os-apply-config")]})
        hook_script = install_originals(DEFAULT_SNAPSHOT, tmp / "heat-agents")["hook-script"]
        hook = count_hook(tmp, {"original": [hook_script], "ours": [str(ours / "heat-config-hook"), "script"]})
    print("millions of instructions                 original      ours   ours/original")
    for label, key in (("os-apply-config: render 500 templates", "render"),
                       ("os-apply-config: same render, unchanged", "unchanged"),
                       ("os-apply-config --help", "help")):
        theirs, mine = apply["original"][key], apply["ours"][key]
        print("  %-38s %8.1f  %8.1f   %5.2f" % (label, theirs, mine, mine / theirs))
    print("  %-38s %8.1f  %8.1f   %5.2f" % ("hook start: one script deployment", hook["original"], hook["ours"],
                                            hook["ours"] / hook["original"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

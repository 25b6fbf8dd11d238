#!/usr/bin/env python3
"""Benchmark os-apply-config and os-refresh-config against the originals (14.1.0 from PyPI), in one run.

    .venv/bin/python bench/apply.py [--runs N]

Installs the originals into bench/.venv-originals (once) and ours, not editable, into
bench/.venv-ours (every run, as the other benches do), builds a template tree of
500 templates (mixed small and ~4 KB, nested keys), lets them settle as an image's templates
are (older than ours' racy window of 2 s), and prints medians and ratios for:
rendering into an empty root, the same render again with nothing changed,
os-refresh-config running 50 trivial scripts across the four phases, and
`os-apply-config --help`. Nothing outside a temporary directory is written: the
original os-apply-config would log to /var/log as root, so it runs through a shim
that makes it believe it is not root.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.collect import install_ours  # noqa: E402
from os_apply_config.cache import RACY_NS  # noqa: E402
from tests.support.originals import orc_oac_originals, original_oac_argv  # noqa: E402


def metadata() -> dict:
    return {
        "service": {"name": "svc-0", "port": 8000, "enabled": True,
                    "db": {"host": "db0.example.com", "user": "u0", "password": "p0"}},
        "services": {"s%d" % i: {"port": 9000 + i, "opts": {"debug": i % 3 == 0, "workers": i % 8}} for i in range(50)},
        "hosts": [{"name": "h%d" % i, "ip": "10.0.0.%d" % i} for i in range(20)],
        "deployments": [{"name": "d%d" % i, "config": {"k": "v%d" % i}} for i in range(5)],
    }


SMALL = (
    "[{{service.name}}]\nport = {{service.port}}\nhost = {{service.db.host}}\nuser = {{service.db.user}}\n"
    "password = {{service.db.password}}\nworkers = {{services.s%(n)d.opts.workers}}\n"
)
BIG_BLOCK = (
    "# section %(n)d: a comment line that pads the template to a realistic size for a config file\n"
    "[s%(n)d]\nport = {{services.s%(n)d.port}}\ndebug = {{services.s%(n)d.opts.debug}}\n"
    "{{#service.enabled}}enabled = true\n{{/service.enabled}}db = {{service.db.host}}\n"
)
BIG_TAIL = "{{#hosts}}host {{name}} = {{ip}}\n{{/hosts}}"


def build_templates(root: Path, count: int = 500) -> None:
    rng = random.Random(42)
    for i in range(count):
        d = root / ("etc/app%02d" % (i % 25)) / ("sub%d" % (i % 3))
        d.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            text = "".join(BIG_BLOCK % {"n": rng.randrange(50)} for _ in range(16)) + BIG_TAIL  # ~4 KB rendered
        else:
            text = SMALL % {"n": rng.randrange(50)}
        (d / ("conf%03d" % i)).write_text(text)


class Sample(NamedTuple):
    """Wall-clock seconds and CPU seconds (user + system, the process and its children)."""

    wall: float
    cpu: float


def timed(argv, env, cwd=None) -> Sample:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("benchmark command failed: %s\n%s" % (argv, stderr.decode()[-2000:]))
    return Sample(elapsed, usage.ru_utime + usage.ru_stime)


def median(samples) -> Sample:
    samples = list(samples)
    return Sample(statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples))


def bench_apply(work: Path, originals: Path, ours: Path, runs: int) -> dict:
    templates = work / "templates"
    build_templates(templates)
    # An image's templates are old; ours identifies a template by its stat only once it is older than
    # the racy window (until then it reads it), so measure with settled templates, as in a guest.
    time.sleep(RACY_NS / 1e9)
    md = work / "md.json"
    md.write_text(json.dumps(metadata()))
    # Ours keeps a render cache for an output root other than / only in a state dir named by the variable.
    env = dict(os.environ, OS_APPLY_CONFIG_LOG_FILE="", LC_ALL="C.UTF-8", OS_APPLY_CONFIG_STATE_DIR=str(work / "state"))
    env.pop("OS_CONFIG_FILES", None)
    tools = {"ours": [str(ours / "os-apply-config")], "original": original_oac_argv(originals)}
    results = {}
    for name, argv in tools.items():
        render, unchanged = [], []
        for i in range(runs):
            out = work / ("out-%s-%d" % (name, i))
            out.mkdir()
            args = argv + ["-t", str(templates), "-o", str(out), "-m", str(md), "--fallback-metadata"]
            render.append(timed(args, env, cwd=str(work)))
            unchanged.append(timed(args, env, cwd=str(work)))
        results[name] = {
            "render": median(render), "unchanged": median(unchanged),
            "help": median(timed(argv + ["--help"], env, cwd=str(work)) for _ in range(runs)),
        }
    theirs_out, ours_out = work / "out-original-0", work / "out-ours-0"
    rendered = [p.relative_to(theirs_out) for p in theirs_out.rglob("*") if p.is_file()]
    results["files"] = len(rendered)
    results["identical_output"] = all((ours_out / rel).read_bytes() == (theirs_out / rel).read_bytes()
                                      for rel in rendered)
    return results


def bench_orc(work: Path, originals: Path, ours: Path, runs: int) -> dict:
    base = work / "orc"
    phases = ["pre-configure.d", "configure.d", "post-configure.d", "migration.d"]
    scripts = []
    for i in range(50):
        d = base / phases[i % 4]
        d.mkdir(parents=True, exist_ok=True)
        path = d / ("%02d-trivial" % i)
        path.write_text("#!/bin/sh\ntrue\n")
        path.chmod(0o755)
        scripts.append(str(path))
    env = dict(os.environ, OS_REFRESH_CONFIG_BASE_DIR=str(base), LC_ALL="C.UTF-8")
    loop = ["/bin/sh", "-c", 'for f in "$@"; do "$f"; done', "sh", *scripts]
    results = {"bare_scripts": median(timed(loop, env) for _ in range(runs))}
    for name, bindir in (("ours", ours), ("original", originals)):
        run_env = dict(env, PATH="%s:%s" % (bindir, env.get("PATH", "/usr/bin:/bin")))
        argv = [str(bindir / "os-refresh-config"), "--lockfile", str(work / ("%s.lock" % name))]
        results[name] = median(timed(argv, run_env) for _ in range(runs))
    return results


def _overhead(total: Sample, bare: Sample):
    return max(total.wall - bare.wall, 1e-9), max(total.cpu - bare.cpu, 1e-9)


def _row(label: str, theirs: Sample, ours: Sample, goal: str = "") -> str:
    return "  %-36s %8.3fs %8.3fs %6.1fx   %8.3fs %8.3fs %6.1fx  %s" % (
        label, theirs.wall, ours.wall, theirs.wall / ours.wall, theirs.cpu, ours.cpu, theirs.cpu / max(ours.cpu, 1e-9),
        goal)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement; medians are printed")
    args = parser.parse_args()
    originals = orc_oac_originals()
    ours = install_ours()
    work = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    try:
        bare_python = median(timed([sys.executable, "-c", "pass"], dict(os.environ)) for _ in range(args.runs))
        apply = bench_apply(work, originals, ours, args.runs)
        orc = bench_orc(work, originals, ours, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    o, t = apply["ours"], apply["original"]
    print("Medians of %d runs; wall clock, then CPU time (user+system), which a busy machine distorts less." % args.runs)
    print("A bare interpreter starts in %.3fs wall here." % bare_python.wall)
    print()
    print("os-apply-config, 500 templates (%d files, identical output: %s)" % (apply["files"], apply["identical_output"]))
    print("  %-36s %9s %9s %7s   %9s %9s %7s  %s" % ("", "original", "ours", "speedup", "cpu orig", "cpu ours",
                                                    "speedup", "goal"))
    print(_row("render into an empty root", t["render"], o["render"], ">= 3x"))
    print(_row("same render again, nothing changed", t["unchanged"], o["unchanged"], ">= 5x"))
    print(_row("os-apply-config --help", t["help"], o["help"]))
    print()
    bare, oo, ot = orc["bare_scripts"], orc["ours"], orc["original"]
    print("os-refresh-config, 50 trivial scripts in 4 phases (overhead = total - one shell loop running them)")
    print("  %-36s %8.3fs wall %8.3fs cpu" % ("shell loop", bare.wall, bare.cpu))
    print("  %-36s %8.3fs wall %8.3fs cpu" % ("original total", ot.wall, ot.cpu))
    print("  %-36s %8.3fs wall %8.3fs cpu" % ("ours total", oo.wall, oo.cpu))
    (ow, oc), (tw, tc) = _overhead(oo, bare), _overhead(ot, bare)
    print("  %-36s %8.2f wall %8.2f cpu   goal <= 0.5" % ("overhead ours / original", ow / tw, oc / tc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

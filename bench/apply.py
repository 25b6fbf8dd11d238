#!/usr/bin/env python3
"""Benchmark os-apply-config and os-refresh-config against the originals (14.1.0 from PyPI), in one run.

    .venv/bin/python bench/apply.py [--runs N]

Installs the originals into bench/.venv-originals (once), builds a template tree of
500 templates (mixed small and ~4 KB, nested keys), and prints medians and ratios for:
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.originals import orc_oac_originals, original_oac_argv  # noqa: E402

OURS = Path(sys.executable).parent


def metadata() -> dict:
    return {
        "service": {"name": "svc-%d" % i, "port": 8000 + i, "enabled": i % 2 == 0,
                    "db": {"host": "db%d.example.com" % i, "user": "u%d" % i, "password": "p%d" % i}}
        for i in range(1)
    } | {
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


def timed(argv, env, cwd=None) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit("benchmark command failed: %s\n%s" % (argv, r.stderr.decode()[-2000:]))
    return elapsed


def median(values) -> float:
    return statistics.median(values)


def bench_apply(work: Path, originals: Path, runs: int) -> dict:
    templates = work / "templates"
    build_templates(templates)
    md = work / "md.json"
    md.write_text(json.dumps(metadata()))
    env = dict(os.environ, OS_APPLY_CONFIG_LOG_FILE="", LC_ALL="C.UTF-8")
    env.pop("OS_CONFIG_FILES", None)
    tools = {
        "ours": [str(OURS / "os-apply-config")],
        "original": original_oac_argv(originals),
    }
    results = {}
    for name, argv in tools.items():
        render, unchanged = [], []
        for i in range(runs):
            out = work / ("out-%s-%d" % (name, i))
            out.mkdir()
            args = argv + ["-t", str(templates), "-o", str(out), "-m", str(md), "--fallback-metadata"]
            render.append(timed(args, env, cwd=str(work)))
            unchanged.append(timed(args, env, cwd=str(work)))
        outputs = [p for p in out.rglob("*") if p.is_file() and "os-apply-config" not in p.parts]
        results[name] = {"render": median(render), "unchanged": median(unchanged), "files": len(outputs)}
        results[name]["help"] = median([timed(argv + ["--help"], env, cwd=str(work)) for _ in range(runs)])
    same = all(
        (work / ("out-ours-0") / rel).read_bytes() == (work / "out-original-0" / rel).read_bytes()
        for rel in (p.relative_to(work / "out-original-0") for p in (work / "out-original-0").rglob("*") if p.is_file())
    )
    results["identical_output"] = same
    return results


def bench_orc(work: Path, originals: Path, runs: int) -> dict:
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
    bare_env = dict(env)
    bare = median([timed(["/bin/sh", "-c", 'for f in "$@"; do "$f"; done', "sh", *scripts], bare_env)
                   for _ in range(runs)])
    results = {"bare_scripts": bare}
    for name, bindir in (("ours", OURS), ("original", originals)):
        run_env = dict(env, PATH="%s:%s" % (bindir, env.get("PATH", "/usr/bin:/bin")))
        argv = [str(bindir / "os-refresh-config"), "--lockfile", str(work / ("%s.lock" % name))]
        total = median([timed(argv, run_env) for _ in range(runs)])
        results[name] = {"total": total, "overhead": max(total - bare, 0.0)}
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per measurement; medians are printed")
    args = parser.parse_args()
    originals = orc_oac_originals()
    work = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    try:
        bare_python = median([timed([sys.executable, "-c", "pass"], dict(os.environ)) for _ in range(args.runs)])
        apply = bench_apply(work, originals, args.runs)
        orc = bench_orc(work, originals, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    o, t = apply["ours"], apply["original"]
    print("os-apply-config, 500 templates (medians of %d runs)" % args.runs)
    print("  %-34s %9s %9s %8s %s" % ("", "original", "ours", "speedup", "goal"))
    print("  %-34s %8.3fs %8.3fs %7.1fx %s" % ("render into an empty root", t["render"], o["render"],
                                               t["render"] / o["render"], ">= 3x"))
    print("  %-34s %8.3fs %8.3fs %7.1fx %s" % ("same render again, nothing changed", t["unchanged"], o["unchanged"],
                                               t["unchanged"] / o["unchanged"], ">= 5x"))
    print("  %-34s %8.3fs %8.3fs %7.1fx" % ("os-apply-config --help", t["help"], o["help"], t["help"] / o["help"]))
    print("  bare interpreter start: %.3fs; outputs identical: %s (%d files)" % (bare_python, apply["identical_output"],
                                                                                 o["files"]))
    oo, ot = orc["ours"], orc["original"]
    print("os-refresh-config, 50 trivial scripts in 4 phases")
    print("  running the 50 scripts from one shell loop: %.3fs" % orc["bare_scripts"])
    print("  %-34s %8.3fs %8.3fs %7.2f" % ("total", ot["total"], oo["total"], oo["total"] / ot["total"]))
    print("  %-34s %8.3fs %8.3fs %7.2f  goal <= 0.5" % ("overhead (total - shell loop)", ot["overhead"],
                                                        oo["overhead"], oo["overhead"] / max(ot["overhead"], 1e-9)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

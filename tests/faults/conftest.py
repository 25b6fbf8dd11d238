"""Shared pieces of the fault suite: the seed, hypothesis profiles, figures reporting, and the outcome checks.

Every test of the suite records its figures in ``FIGURES`` (via the ``figures`` fixture); the
terminal summary prints them whether or not ``-s`` is given, and they are written as JSON to
``$FAULTS_FIGURES`` (default: ``faults-figures.json`` in pytest's base temp directory).
"""
from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.configuration import set_hypothesis_home_dir

from tests.support.sandbox import PLANTED_SECRETS, Sandbox, ToolResult, make_sandbox, run_in_sandbox

#: One seed drives the soak's faults and the kill jitter; ``FAULTS_SEED`` replays a run.
SEED = int(os.environ.get("FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))

#: Hypothesis keeps caches in a directory of its own: outside the work tree, as every file a test makes.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "os-config-agents-hypothesis"))
_COMMON = dict(deadline=None, print_blob=True, database=None,  # no .hypothesis/ in the work tree: replay by blob
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                      HealthCheck.data_too_large, HealthCheck.filter_too_much])
#: CI: a few examples per target (each is a real subprocess), derandomized so a failure is the same next run,
#: reported as found (shrinking one failure costs hundreds of subprocesses; scripts/fuzz shrinks).
settings.register_profile("ci", max_examples=int(os.environ.get("FAULTS_EXAMPLES") or 12), derandomize=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], report_multiple_bugs=False,
                          **_COMMON)
#: scripts/fuzz: many more, each run a different draw (hypothesis prints the blob that replays a failure).
settings.register_profile("long", max_examples=int(os.environ.get("FAULTS_EXAMPLES") or 300), **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TRACEBACK = "Traceback (most recent call last)"
#: Figures by section ("soak", "kill", "fuzz"...), printed at the end of the session.
FIGURES: Dict[str, Any] = {"seed": SEED, "hypothesis_profile": os.environ.get("HYPOTHESIS_PROFILE", "ci")}


@pytest.fixture(scope="session")
def figures() -> Dict[str, Any]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if len(FIGURES) <= 2:
        return
    terminalreporter.section("fault suite figures (FAULTS_SEED=%d)" % SEED)
    for key, value in FIGURES.items():
        terminalreporter.write_line("%s: %s" % (key, json.dumps(value, sort_keys=True)))
    target = os.environ.get("FAULTS_FIGURES")
    path = Path(target) if target else Path(str(config._tmp_path_factory.getbasetemp())) / "faults-figures.json"  # type: ignore[attr-defined]
    path.write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")
    terminalreporter.write_line("figures written to %s" % path)


# -- os-collect-config in a sandbox -------------------------------------------------------------------
def occ_args(box: Sandbox) -> List[str]:
    """os-collect-config's paths, all in the sandbox ``box`` (local-data is ``lib/local-data``)."""
    return ["--cachedir", str(box.path("cache")), "--backup-cachedir", str(box.path("backup")),
            "--local-path", str(box.path("lib", "local-data")),
            "--heat_local-path", str(box.path("lib", "cfn-init-data"))]


# -- secrets ------------------------------------------------------------------------------------------
def secret_hits(text: str, secrets: Sequence[str] = PLANTED_SECRETS) -> List[str]:
    return [s for s in secrets if s and s in text]


def scan_tree_for_secrets(root: Path, secrets: Sequence[str], private_ok: Callable[[Path], bool]) -> List[str]:
    """Files under ``root`` holding a secret where SPEC §12.10 forbids it: any file not ``private_ok``
    (the 0600 state and the deployments file), and any such file readable by others."""
    leaks = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                text = path.read_bytes().decode("utf-8", "replace")
            except OSError:
                continue
            hits = secret_hits(text, secrets)
            if not hits:
                continue
            if not private_ok(path):
                leaks.append("%s holds %s" % (path, hits))
            elif path.stat().st_mode & 0o077:
                leaks.append("%s holds %s and is mode %o" % (path, hits, path.stat().st_mode & 0o777))
    return leaks


# -- fuzz outcome --------------------------------------------------------------------------------------
class FuzzTarget:
    """One fuzzed command: runs each generated example in a fresh sandbox and checks its outcome.

    The outcome of every example must be a result or one clear line: no traceback, no hang
    (a subprocess time-out), no secret in the output, and no file created outside the sandbox
    (the sandbox's parent directory is listed before and after)."""

    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.base = base
        self.stats = FIGURES.setdefault("fuzz", {}).setdefault(name, {"examples": 0, "tracebacks": 0,
                                                                      "hangs": 0, "distinct": []})

    def sandbox(self) -> Sandbox:
        return make_sandbox(Path(tempfile.mkdtemp(prefix="ex", dir=str(self.base))))

    def run(self, box: Sandbox, tool: str, args: Sequence[str] = (), *, input: Optional[str] = None,
            env: Optional[Dict[str, str]] = None, timeout: float = 30,
            secrets: Sequence[str] = PLANTED_SECRETS) -> ToolResult:
        import subprocess

        before = set(os.listdir(self.base.parent))
        self.stats["examples"] += 1
        try:
            result = run_in_sandbox(box, tool, args, input=input, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.stats["hangs"] += 1
            raise AssertionError("%s %s hung (no exit within %s s)" % (tool, " ".join(args), timeout)) from exc
        assert set(os.listdir(self.base.parent)) == before, "a file appeared outside the sandbox"
        self.check(result, secrets)
        return result

    def check(self, result: ToolResult, secrets: Sequence[str] = PLANTED_SECRETS) -> None:
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if TRACEBACK in text:
                self.stats["tracebacks"] += 1
                last = traceback_last_line(text)
                if last not in self.stats["distinct"]:
                    self.stats["distinct"].append(last)
                raise AssertionError("%s printed a traceback on %s (exit %s): %s\n%s"
                                     % (self.name, stream, result.returncode, last, text[-3000:]))
            hits = secret_hits(text, secrets)
            assert not hits, "%s leaked %s on %s" % (self.name, hits, stream)
        if result.returncode != 0:
            assert result.stderr.strip() or result.stdout.strip(), \
                "%s failed (exit %s) without saying why" % (self.name, result.returncode)


@pytest.fixture(scope="module")
def fuzz_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding only the examples' sandboxes (its parent is what 'outside' is checked on)."""
    outer = tmp_path_factory.mktemp("fuzz")
    base = outer / "examples"
    base.mkdir()
    yield base


def traceback_last_line(text: str) -> str:
    """The exception line that ends the first traceback in ``text`` (the first unindented line after it)."""
    lines = text[text.index(TRACEBACK):].splitlines()[1:]
    for line in lines:
        if line.strip() and not line.startswith((" ", "\t")):
            return line.strip()[:200]
    return lines[-1].strip()[:200] if lines else TRACEBACK


def json_files_under(roots: Iterable[Path]) -> Iterator[Path]:
    for root in roots:
        if root.exists():
            yield from (p for p in root.rglob("*") if p.is_file() and re.search(r"\.json(\.last|\.orig)?$", p.name))

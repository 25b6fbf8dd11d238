"""os-refresh-config: run the pre-configure, configure, post-configure and migration phases (SPEC §3).

Same command line, base directory rules, phases, run-parts rules, lock file and exit
statuses as the original.  A second trigger waits for the lock, the time limit covers
every phase and error.d and stops scripts gently first, a failing script is named
with the tail of its output, a summary names every script with its duration and
status, and logs can be JSON lines.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional, Sequence

from agent_common.cli import new_parser
from agent_common.logs import log_format, setup_logging
from agent_common.paths import PATHS
from os_refresh_config import runparts
from os_refresh_config.lock import LockError, RunLock

PHASES = ("pre-configure", "configure", "post-configure", "migration")
LEVELS = ["ERROR", "WARN", "CRITICAL", "INFO", "DEBUG"]
TOOL = "os-refresh-config"
LOG = logging.getLogger(TOOL)


def default_base_dir(
    environ=os.environ,
    default: str = PATHS["orc_base_dir"].default,
    legacy: str = PATHS["orc_legacy_base_dir"].default,
) -> str:
    """SPEC §3.2: $OS_REFRESH_CONFIG_BASE_DIR (even empty), else the legacy dir if only it exists, else the default."""
    value = environ.get("OS_REFRESH_CONFIG_BASE_DIR")
    if value is not None:
        return value
    if os.path.isdir(legacy) and not os.path.isdir(default):
        sys.stderr.write(
            "WARNING: Base directory %s is deprecated. The recommended base directory is %s\n" % (legacy, default)
        )
        return legacy
    return default


def check_base_dir(base: str, environ=os.environ) -> Optional[int]:
    """Say so when the base directory is missing: the original ran nothing, printed nothing and exited 0.

    Named by OS_REFRESH_CONFIG_BASE_DIR, a missing directory is a mistake (a typo): exit 1,
    so that os-collect-config keeps its new metadata uncommitted and tries again instead of
    recording a configuration that was never applied.  The built-in default missing only
    means that nothing is installed yet: a warning, and exit 0 as before.  Returns the
    exit status to stop with, or None to go on.
    """
    if os.path.isdir(base or "."):
        return None
    why = "does not exist" if not os.path.exists(base) else "is not a directory"
    if environ.get("OS_REFRESH_CONFIG_BASE_DIR") is not None:
        LOG.error("base directory %s (from OS_REFRESH_CONFIG_BASE_DIR) %s; no phase ran", base, why)
        return 1
    LOG.warning("base directory %s %s; no phase ran", base, why)
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(
        TOOL,
        "Run the configuration phases (pre-configure, configure, post-configure, migration) "
        "found under the base directory; set OS_REFRESH_CONFIG_BASE_DIR to choose it. Stops at the first "
        "failing phase, runs error.d and exits 1.",
        ["os-refresh-config",
         "OS_REFRESH_CONFIG_BASE_DIR=$PWD/orc os-refresh-config --lockfile /tmp/orc.lock --log-format json"],
    )
    p.add_argument("--print-base", action="store_true", help="Print the base directory and exit.")
    p.add_argument("--print-phases", action="store_true", help="Print the phases (tab separated) and exit.")
    p.add_argument("--log-level", default="INFO", choices=LEVELS, help="Log level (default: INFO).")
    p.add_argument("--lockfile", default=PATHS["orc_lockfile"].default,
                   help="Lock file that keeps runs from overlapping (default: %(default)s).")
    p.add_argument("--lock-timeout", type=_seconds, default=600.0, metavar="SECONDS",
                   help="How long to wait for a running os-refresh-config to finish (default: 600; 0: do not wait).")
    p.add_argument("--timeout", type=int, default=None, metavar="SECONDS",
                   help="Limit for the whole run; error.d gets the same limit again. 0 or absent: no limit.")
    p.add_argument("--script-timeout", type=_seconds, default=None, metavar="SECONDS",
                   help="Limit for each script, in every phase and error.d. Absent: no limit.")
    p.add_argument("--kill-grace", type=_seconds, default=10.0, metavar="SECONDS",
                   help="Seconds between SIGTERM and SIGKILL for a script over its limit (default: 10).")
    return p


class Runner:
    """The phases of one run, with the bookkeeping for the final summary."""

    def __init__(self, base: str, options: argparse.Namespace, emit: runparts.Emit) -> None:
        self.base = base
        self.options = options
        self.emit = emit
        self.done: List[runparts.ScriptResult] = []

    def _deadline(self) -> Optional[float]:
        return time.monotonic() + self.options.timeout if self.options.timeout else None

    def _run(self, directory: str, deadline: Optional[float]) -> runparts.PartsResult:
        result = runparts.run_parts(
            directory,
            emit=self.emit,
            deadline=deadline,
            script_timeout=self.options.script_timeout or None,
            kill_grace_s=self.options.kill_grace,
        )
        self.done.extend(result.scripts)
        return result

    def run(self) -> int:
        deadline = self._deadline()
        for phase in PHASES:
            phase_dir = os.path.join(self.base, "%s.d" % phase)
            LOG.debug("Checking %s", phase_dir)
            if not os.path.exists(phase_dir):
                LOG.debug("No dir for phase %s", phase)
                continue
            LOG.info("Starting phase %s", phase)
            result = self._run(phase_dir, deadline)
            if result.status == 0:
                LOG.info("Completed phase %s", phase)
                continue
            self._report_failure(phase, result)
            self._run_error_handlers()
            LOG.error("Aborting...")
            return 1
        return 0

    def _report_failure(self, phase: str, result: runparts.PartsResult) -> None:
        failed = result.failed
        if failed is None:
            LOG.error("during %s phase. [%s]", phase, result.error)
            return
        why = ("timed out (limit reached)" if failed.timed_out else "failed with exit status %d" % failed.status)
        extra = {"fields": {"phase": phase, "script": failed.path, "status": failed.status, "output_tail": failed.tail}}
        if self.options.log_format == "json":
            LOG.error("during %s phase: %s %s", phase, failed.path, why, extra=extra)
        else:
            tail = "".join("\n    | " + line for line in failed.tail.splitlines()) if failed.tail else ""
            LOG.error("during %s phase: %s %s; last output:%s", phase, failed.path, why, tail or " (none)")

    def _run_error_handlers(self) -> None:
        error_dir = os.path.join(self.base, "error.d")
        if os.path.exists(error_dir):
            LOG.info("Calling error handlers.")
            self._run(error_dir, self._deadline())

    def summary(self, elapsed: float) -> None:
        if not self.done:
            return
        failed = [s for s in self.done if s.status != 0]
        LOG.info("Summary: %d script(s) in %.3f s, %d failed", len(self.done), elapsed, len(failed))
        base = self.base.rstrip("/") + "/" if self.base else ""
        for s in self.done:
            shown = s.path[len(base):] if base and s.path.startswith(base) else s.path
            state = "timed out" if s.timed_out else "exit %d" % s.status
            LOG.info("  %-50s %8.3f s  %s", shown, s.duration_s, state,
                     extra={"fields": {"script": s.path, "duration_s": round(s.duration_s, 3), "status": s.status,
                                       "timed_out": s.timed_out}})


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = build_parser().parse_args(argv)
    base = default_base_dir()
    if options.print_base:
        print(base)
        return 0
    if options.print_phases:
        print("\t".join(PHASES))
        return 0

    options.log_format = log_format(options.log_format)
    setup_logging(TOOL, level=logging.getLevelName(options.log_level), log_format_choice=options.log_format)
    stop = check_base_dir(base)
    if stop is not None:
        return stop
    emit = runparts.log_emitter()
    runparts.stop_on_signals()

    lock = RunLock(options.lockfile)
    runner = Runner(base, options, emit)
    start = time.monotonic()
    try:
        lock.acquire(options.lock_timeout,
                     lambda holder: LOG.info("Waiting for %s, held by %s", options.lockfile, holder))
        status = runner.run()
    except LockError as exc:
        LOG.error("%s", exc)
        return 1
    except runparts.Terminated as exc:
        LOG.error("Stopped by signal %d; the running script was stopped too. Aborting...", exc.signum)
        status = 128 + exc.signum
    finally:
        lock.release()
    runner.summary(time.monotonic() - start)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

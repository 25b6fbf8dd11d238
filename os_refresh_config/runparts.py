"""dib-run-parts: run the executable scripts of one directory, in `sort -n` order (SPEC §3.6).

Images and elements call `dib-run-parts DIR` from PATH, and os-refresh-config runs
its phases through the same code in-process.  The rules users rely on are kept:
which files are selected, their order, `environment.d` sourced in bash under
`set -eu -o pipefail` with only exported variables reaching the scripts, bash as
the fallback for scripts without a shebang, the first failure stops the run, the
stderr lines and the profiling block.  The environment files are never traced with
xtrace (they hold passwords), the order is the C locale's whatever LC_ALL says,
skipped executables are named, and every script can be limited in time.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from agent_common import proc
from agent_common.cli import common_flags
from agent_common.logs import log_format, setup_logging
from agent_common.proc import TIMEOUT_STATUS

DEFAULT_REGEX = "^[0-9A-Za-z_-]+$"
ENV_FILE_RE = re.compile(r"^[0-9A-Za-z_.-]+$")
#: How much of a script's stdout and stderr is kept for the failure report.
TAIL_BYTES = 64 * 1024
#: The leading number of a name, as GNU `sort -n` reads it in the C locale.
_SORT_NUMBER = re.compile(r"[ \t]*(-?)([0-9]*)(?:\.([0-9]*))?")

Emit = Callable[[str], None]


class Terminated(Exception):
    """We were asked to stop (SIGTERM, SIGHUP, SIGINT); raised where we are, so the running
    script's process group is stopped on the way out (proc.run does that for any exception)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stop_on_signals() -> None:
    """Turn SIGTERM, SIGHUP and SIGINT into Terminated: scripts run in their own process groups,
    so without this a stopped runner would leave its running script behind."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, handler)


def date_stamp() -> str:
    """What `date` prints in the C locale; the prefix of every dib-run-parts line."""
    return time.strftime("%a %b %e %H:%M:%S %Z %Y")


def stderr_emitter(name: str = "dib-run-parts") -> Emit:
    """Writes `<name> <date> <message>` lines to stderr, as the bash original does."""

    def emit(message: str) -> None:
        sys.stderr.write("%s %s %s\n" % (name, date_stamp(), message))
        sys.stderr.flush()

    return emit


def log_emitter() -> Emit:
    """The same lines as log records of the running tool: os-refresh-config's stream, or --log-format json."""
    log = logging.getLogger("dib-run-parts")

    def emit(message: str) -> None:
        if message.strip():
            log.info("%s", message)

    return emit


def sort_key(name: str) -> Tuple[object, bytes]:
    """The key of GNU `sort -n` under LANG=C: the leading number, then the bytes of the whole name.

    A name without a leading number counts as 0; "-3" is minus three; a decimal
    fraction counts. Ties fall back to a bytewise comparison, as sort's last resort.
    """
    m = _SORT_NUMBER.match(name)
    assert m is not None, "every part of the pattern is optional: it matches any name"
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    number = Decimal(0)
    if whole or frac:
        number = Decimal("%s%s.%s" % (sign, whole or "0", frac or "0"))
    return number, name.encode("utf-8", "surrogateescape")


def sort_names(names: Sequence[str]) -> List[str]:
    return sorted(names, key=sort_key)


@dataclass
class Selection:
    """The scripts to run, in order, and the executables skipped for their names."""

    scripts: List[str]
    skipped: List[str]


def select(directory: str, regex: str) -> Selection:
    """Direct entries that are (links to) regular files we may execute and whose name matches ``regex``.

    Raises ValueError, naming RUN_PARTS_REGEX, when ``regex`` does not compile.
    """
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError("RUN_PARTS_REGEX %r is not a valid regular expression: %s" % (regex, exc)) from None
    scripts: List[str] = []
    skipped: List[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                if not entry.is_file():  # follows symlinks, as find -xtype f
                    continue
            except OSError:
                continue
            if not os.access(entry.path, os.X_OK):
                continue
            (scripts if pattern.search(entry.name) else skipped).append(entry.name)
    return Selection(sort_names(scripts), sorted(skipped))


def environment_files(directory: str) -> List[str]:
    """`DIR/../environment.d` files to source, in bytewise name order (dots allowed, no x bit needed)."""
    env_dir = os.path.join(directory, "..", "environment.d")
    if not os.path.isdir(env_dir):
        return []
    found = []
    for entry in os.scandir(env_dir):
        if ENV_FILE_RE.match(entry.name) and entry.is_file():
            found.append(entry.name)
    found.sort(key=lambda n: n.encode("utf-8", "surrogateescape"))
    return [os.path.join(env_dir, n) for n in found]


# Sourced inside a function, as the original does, so `local` and `declare` in an
# environment file behave the same; positional parameters are cleared for the same reason.
# What is exported (variables, and functions as bash exports them) is dumped after a marker by
# env(1) from the system PATH; set -eu -o pipefail, and no xtrace.
_SOURCE_SCRIPT = r"""
set -eu -o pipefail
__orc_marker=$1; shift
__orc_files=("$@"); set --
__orc_source_all() {
  local __orc_f
  for __orc_f in "${__orc_files[@]}"; do
    source "$__orc_f"
  done
}
__orc_source_all
printf '%s' "$__orc_marker"
command -p env -0
"""


class EnvSourceError(Exception):
    """Sourcing environment.d failed; ``status`` is bash's exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def load_environment(
    files: Sequence[str],
    base_env: Mapping[str, str],
    emit: Emit,
    timeout: Optional[float] = None,
) -> Dict[str, str]:
    """The environment the scripts get: ``base_env`` plus what ``files`` export, sourced by bash.

    Which files were sourced is reported; their contents and values never are.
    """
    if not files:
        return dict(base_env)
    for path in files:
        emit("Sourcing environment file %s" % path)
    marker = "__orc_env_%s__" % os.urandom(8).hex()
    result = proc.run(
        ["bash", "-c", _SOURCE_SCRIPT, "bash", marker, *files],
        env=base_env,
        timeout=timeout,
        output_cap=16 * 1024 * 1024,
        kill_grace_s=1.0,
    )
    head, sep, dump = result.stdout.rpartition(marker.encode())
    if not sep:
        head, dump = result.stdout, b""
    _forward(head, result.stderr)
    if result.timed_out:
        raise EnvSourceError("sourcing environment.d timed out", TIMEOUT_STATUS)
    if result.returncode != 0 or not sep:
        raise EnvSourceError(
            "sourcing environment.d failed with exit status %d" % result.returncode,
            result.returncode or 1,
        )
    env: Dict[str, str] = {}
    for item in dump.split(b"\0"):
        key, eq, value = item.partition(b"=")
        if eq and key != b"_":
            env[os.fsdecode(key)] = os.fsdecode(value)
    return env


def _forward(stdout: bytes, stderr: bytes) -> None:
    for fd, data in ((1, stdout), (2, stderr)):
        if data:
            proc.write_all(fd, data)


@dataclass
class ScriptResult:
    """One script's outcome; ``tail`` holds the end of its stdout and stderr for failure reports."""

    directory: str
    name: str
    status: int
    duration_s: float
    timed_out: bool = False
    tail: str = ""

    @property
    def path(self) -> str:
        return "%s/%s" % (self.directory, self.name)


@dataclass
class PartsResult:
    directory: str
    status: int = 0
    scripts: List[ScriptResult] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def failed(self) -> Optional[ScriptResult]:
        for script in self.scripts:
            if script.status != 0:
                return script
        return None


def _run_script(path: str, env: Mapping[str, str], timeout: Optional[float], grace: float) -> proc.ProcResult:
    """Execute ``path``; a file without a shebang (ENOEXEC) runs under bash, as bash would run it."""
    def run(argv: List[str]) -> proc.ProcResult:
        return proc.run(argv, env=env, timeout=timeout, tee=True, output_cap=TAIL_BYTES, kill_grace_s=grace,
                        drain_s=0.5)

    try:
        return run([path])
    except OSError as exc:
        if exc.errno != errno.ENOEXEC:
            status = 127 if exc.errno == errno.ENOENT else 126
            message = "%s: %s\n" % (path, os.strerror(exc.errno or errno.EIO))
            _forward(b"", message.encode())
            return proc.ProcResult(status, b"", message.encode(), 0.0)
    return run(["bash", path])


def _tail_text(result: proc.ProcResult, lines: int = 20) -> str:
    text = (result.stdout + result.stderr).decode("utf-8", "replace")
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def run_parts(
    directory: str,
    *,
    emit: Emit,
    env: Optional[Mapping[str, str]] = None,
    regex: Optional[str] = None,
    deadline: Optional[float] = None,
    script_timeout: Optional[float] = None,
    kill_grace_s: float = proc.KILL_GRACE_S,
) -> PartsResult:
    """Run every selected script of ``directory`` in order; stop at the first failure.

    ``deadline`` (time.monotonic) bounds the whole directory, ``script_timeout`` each
    script; whichever comes first stops the script's process group.
    """
    base_env = dict(os.environ if env is None else env)
    if regex is None:
        regex = base_env.get("RUN_PARTS_REGEX") or DEFAULT_REGEX
    result = PartsResult(directory)
    if not os.path.isdir(directory):
        result.status, result.error = 1, "Scripts directory [%s] must exist and be a directory" % directory
        emit(result.error)
        return result
    try:
        selection = select(directory, regex)
    except ValueError as exc:
        result.status, result.error = 1, str(exc)
        emit(result.error)
        return result
    for name in selection.skipped:
        emit("Skipping %s/%s: its name does not match %s" % (directory, name, regex))

    def remaining() -> Optional[float]:
        limits = [t for t in (script_timeout, None if deadline is None else deadline - time.monotonic()) if t]
        return max(min(limits), 0.001) if limits else None

    try:
        script_env = load_environment(environment_files(directory), base_env, emit, remaining())
    except EnvSourceError as exc:
        result.status, result.error = exc.status, str(exc)
        emit(result.error)
        return result
    for name in selection.scripts:
        if deadline is not None and time.monotonic() >= deadline:
            result.scripts.append(ScriptResult(directory, name, TIMEOUT_STATUS, 0.0, True, "not started: time limit reached"))
            result.status = TIMEOUT_STATUS
            return result
        path = "%s/%s" % (directory, name)
        emit("Running %s" % path)
        ran = _run_script(path, script_env, remaining(), kill_grace_s)
        status = TIMEOUT_STATUS if ran.timed_out else _exit_status(ran.returncode)
        result.scripts.append(ScriptResult(directory, name, status, ran.duration_s, ran.timed_out, _tail_text(ran)))
        if status != 0:
            if ran.timed_out:
                emit("%s timed out after %.1f s" % (name, ran.duration_s))
            result.status = status
            return result
        emit("%s completed" % name)
    _profile(result, emit)
    return result


def _exit_status(returncode: int) -> int:
    """A shell's view of a child's status: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _profile(result: PartsResult, emit: Emit) -> None:
    emit("----------------------- PROFILING -----------------------")
    emit("")
    emit("Target: %s" % os.path.basename(result.directory.rstrip("/")))
    emit("")
    emit("%-40s %9s" % ("Script", "Seconds"))
    emit("%-40s %9s" % ("-" * 39, "-" * 10))
    emit("")
    for script in result.scripts:
        emit("%-40s %10.3f" % (script.name, script.duration_s))
    emit("")
    emit("--------------------- END PROFILING ---------------------")


USAGE = """Usage: {name} [OPTION] scripts_directory
Option:
      --list  print names of all valid files

Examples:
      {name} --list /opt/stack/os-config-refresh/configure.d/
      {name} /opt/stack/os-config-refresh/configure.d/
"""


HELP = """{name}: run the executable scripts of one directory, in order, stopping at the first failure.

Selected: direct entries of the directory that are regular files (or links to one), executable,
and whose name matches $RUN_PARTS_REGEX (default ^[0-9A-Za-z_-]+$: names with dots are skipped).
Order: by leading number (as sort -n), then by name.  Before the scripts, the files of
DIR/../environment.d are sourced (bash, set -eu, in name order); what they export reaches
every script.  Each script's output passes through; a profile of times ends a successful run.

Exit status: 0 when every script succeeded (or none was selected), else the failing script's
status; 1 when DIR is not a directory.

""" + USAGE


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The `dib-run-parts [--list] DIR` console script; exit status as the bash original."""
    name = os.path.basename(sys.argv[0]) or "dib-run-parts"
    args, chosen = common_flags(sys.argv[1:] if argv is None else argv, name)
    if log_format(chosen) == "json":
        setup_logging(name, log_format_choice="json")
        emit = log_emitter()
    else:  # the bash original's lines
        emit = stderr_emitter(name)
    if not args:
        sys.stderr.write(USAGE.format(name=name))
        return 1
    if args[0] in ("-h", "--help"):  # the original took it for a directory name
        sys.stdout.write(HELP.format(name=name))
        return 0
    show_list = args[0] == "--list"
    if show_list:
        args.pop(0)
    directory = args[0] if args else ""
    if not os.path.isdir(directory):
        emit("Scripts directory [%s] must exist and be a directory" % directory)
        sys.stderr.write(USAGE.format(name=name))
        return 1
    if show_list:
        regex = os.environ.get("RUN_PARTS_REGEX") or DEFAULT_REGEX
        try:
            scripts = select(directory, regex).scripts
        except ValueError as exc:
            emit(str(exc))
            return 1
        for script in scripts:
            print("%s/%s" % (directory, script))
        return 0
    stop_on_signals()
    try:
        return run_parts(directory, emit=emit).status
    except Terminated as exc:
        return 128 + exc.signum

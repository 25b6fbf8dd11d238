"""The dispatcher run of SPEC §6.5–§6.6, made crash-safe with the journal.

Per deployment: validate, coerce, resolve the component, skip what is deployed,
find the hook, then record → mark → run → record the result → signal.  Around
the loop: recover what a killed run left behind, retry pending signals first,
drain the outbox at the end, and remove the files of deployments that left the
metadata.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Set

import hooks
from agent_common import deployment_contract as contract
from agent_common import proc
from agent_common.atomic import atomic_write, ensure_dir, remove_stale_temp_files
from agent_common.deployment_contract import hook_timeout, input_values, register_input_secrets
from agent_common.logs import redact
from agent_common.paths import get_path
from heat_config import deployment as dep
from heat_config import hook_runner
from heat_config.journal import FINISHED, RECEIVED, RUNNING, SIGNAL_PENDING, SIGNALLED, Journal, JournalRecord, now
from heat_config.signals import InProcessSender, Outbox, ProgramSender, mark_finished, retry_budget, route_problem
from hooks.toolkit.context import HookContext
from hooks.toolkit.result import HookResult

LOG = logging.getLogger("heat-config")

#: Seconds to wait for a stopped hook group's processes to be gone after SIGKILL.
GROUP_EXIT_S = 5.0

INTERRUPTED_STATUS = 1
INTERRUPTED_MESSAGE = ("heat-config stopped while this deployment's hook was running (the agent was killed or "
                       "the machine restarted); the hook was not run again. Delete %s to run it again.\n")


@dataclass(frozen=True)
class DispatchSettings:
    """Everything read from the environment once at start-up (SPEC §6.2)."""

    config_file: str
    deployed_dir: str
    deployed_old: str
    notify_program: Optional[str]
    environ: Dict[str, str]
    #: ``--metrics-file``, else $OS_CONFIG_AGENTS_METRICS_FILE, else None (SPEC §12.15).
    metrics_file: Optional[str] = None

    @classmethod
    def from_environ(cls, environ: Optional[Mapping[str, str]] = None,
                     metrics_file: Optional[str] = None) -> "DispatchSettings":
        env = dict(os.environ if environ is None else environ)
        return cls(
            config_file=get_path("heat_shell_config", env),
            deployed_dir=get_path("heat_config_deployed", env),
            deployed_old=get_path("heat_config_deployed_old", env),
            notify_program=env.get("HEAT_CONFIG_NOTIFY") or None,
            environ=env,
            metrics_file=metrics_file or env.get("OS_CONFIG_AGENTS_METRICS_FILE") or None,
        )


def pretty(data: Any) -> str:
    """The original's state-file format: indent 2, ',' and ': ' separators."""
    return json.dumps(data, indent=2, separators=(",", ": "))


def prepare_deployed_dir(settings: DispatchSettings) -> None:
    """SPEC §6.5 step 4: move the legacy state dir once, or create the state dir 0700."""
    if os.path.isdir(settings.deployed_dir):
        return
    if settings.deployed_old != settings.deployed_dir and os.path.isdir(settings.deployed_old):
        LOG.debug("Migrating deployed state from %s to %s", settings.deployed_old, settings.deployed_dir)
        ensure_dir(os.path.dirname(os.path.abspath(settings.deployed_dir)), 0o755)
        shutil.move(settings.deployed_old, settings.deployed_dir)
    else:
        os.makedirs(settings.deployed_dir, 0o700)


class Dispatcher:
    """One dispatcher run over one deployments file."""

    def __init__(self, settings: DispatchSettings) -> None:
        self.settings = settings
        self.journal = Journal(settings.deployed_dir)
        if settings.notify_program:
            sender: Any = ProgramSender(settings.notify_program, self.journal, settings.environ)
        else:
            sender = InProcessSender(settings.environ)
        self.via_program = bool(settings.notify_program)
        self.outbox = Outbox(self.journal, sender, budget_s=retry_budget(settings.environ))
        self.current: Set[str] = set()
        #: The journal records this run needs (the unsettled ones, then those it writes), by id.
        self.known: Dict[str, JournalRecord] = {}
        #: Every id the journal held when the run started.
        self.journaled: List[str] = []

    # -- paths --------------------------------------------------------------------------------
    def marker(self, dep_id: str) -> str:
        return os.path.join(self.settings.deployed_dir, dep_id + ".json")

    def notify_file(self, dep_id: str) -> str:
        return os.path.join(self.settings.deployed_dir, dep_id + ".notify.json")

    # -- the run ------------------------------------------------------------------------------
    def run(self, deployments: List[Any], *, signals_only: bool = False) -> None:
        started = time.time()
        self.journal.lock()
        self.remove_stale_temp_files(started)
        self.load_journal()
        self.outbox.load(self.known.values())
        self.recover()
        self.outbox.retry_all()
        if not signals_only:
            for position, item in enumerate(deployments, 1):
                try:
                    self.process(item, position)
                except Exception:  # one broken deployment must not stop the others (§6.5 step 6)
                    LOG.exception("Error processing a deployment")
                self.outbox.retry_due()
        remaining = self.outbox.drain()
        if remaining:
            LOG.warning("%d signal(s) still pending; they will be retried by the next run", remaining)
        if not signals_only:
            self.cleanup()

    def load_journal(self) -> None:
        """Read only the records that are not settled: a run with nothing new reads none."""
        self.journaled, flagged = self.journal.index()
        for dep_id in flagged:
            record = self.journal.load(dep_id)
            if record is None:
                self.journal.remove(dep_id)
                continue
            self.restore_notify_file(record)
            if record.settled:
                self.journal.close(record)  # a flag left by a kill between two writes
            else:
                self.known[dep_id] = record

    def remove_stale_temp_files(self, started: float) -> None:
        """Temporary files that a kill mid-write left behind (issue 12 defect 14).

        Only with the lock held, so no other dispatcher can be writing them.
        """
        for directory in (self.settings.deployed_dir, self.journal.dir):
            try:
                for path in remove_stale_temp_files(directory, started):
                    LOG.info("Removed %s, left by a run that was killed while writing it", path)
            except OSError as exc:
                LOG.warning("Could not remove temporary files in %s: %s", directory, exc.strerror or exc)

    def restore_notify_file(self, record: JournalRecord) -> None:
        """Write ``<id>.notify.json`` from the journal when a kill came between the two (§6.6 step 10)."""
        notify = self.notify_file(record.id)
        if record.step not in (FINISHED, SIGNALLED) or record.signal_data is None or os.path.exists(notify):
            return
        atomic_write(notify, pretty(record.signal_data), 0o600)
        LOG.info("Wrote %s, which a killed run had left unwritten", notify)

    def recover(self) -> None:
        """A hook that was running when the dispatcher died is reported failed, once, never re-run (§12.3)."""
        for record in list(self.known.values()):
            if record.step == RUNNING:
                stop_orphan(record)  # even when its marker is gone: the re-run must not overlap it
            if record.step != RUNNING or not os.path.exists(self.marker(record.id)):
                continue
            LOG.error("Deployment %s was interrupted while its hook ran; signalling it failed", record.id)
            record.interrupted = True
            data = HookResult.failure(INTERRUPTED_MESSAGE % self.marker(record.id), INTERRUPTED_STATUS)
            self.finish(record, data.signal_data(), dep.load_file(self.marker(record.id)))

    def process(self, item: Any, position: int) -> None:
        refused = contract.refusal(item, "#%d in %s" % (position, self.settings.config_file))
        if not isinstance(item, dict) or contract.id_problem(item.get("id")):
            LOG.error("Refusing %s", refused)  # no usable id: no state file, never signalled (§12.13.8)
            return
        dep_id = item["id"]
        self.current.add(dep_id)
        if refused is None:  # fields of the wrong type: refused below, once the deployment is recorded
            dep.coerce_inputs(item)
            if not dep.resolve_component(item):
                LOG.warning("Skipping group component, no valid script is defined for deploy action %s",
                            dep.action_of(item))
                return
        group = dep.group_of(item)
        record = self.known.get(dep_id)
        marker = self.marker(dep_id)
        if os.path.exists(marker) and (record is None or record.step != RECEIVED):
            LOG.warning("Skipping config %s, already deployed", dep_id)
            LOG.warning("To force-deploy, rm %s", marker)
            return

        register_input_secrets(item)
        group_problem = contract.name_problem(group)
        ref = None if refused or group_problem else hook_runner.find(group, self.settings.environ)
        if ref is None and not group_problem and group in dep.OAC_GROUPS:
            LOG.debug("Skipping group %s: applied by os-apply-config", group)
            return

        record = JournalRecord(id=dep_id, name=str(item.get("name") or ""), group=group, action=dep.action_of(item),
                        received_at=now())
        self.known[dep_id] = record
        self.journal.save(record)
        atomic_write(marker, pretty(item), 0o600)  # durable: a recovery after a power cut signals from it

        message = self.refusal(item, refused, group_problem, ref)
        if message:
            LOG.error("%s", message)
            self.finish(record, HookResult.failure(message).signal_data(), item)
            return
        assert ref is not None  # refusal() refuses a deployment without a hook

        record.step, record.started_at = RUNNING, now()
        self.journal.save(record)
        ctx = HookContext(environ=dict(self.settings.environ), timeout=hook_timeout(item, self.settings.environ),
                          on_start=lambda pid: self.hook_started(record, pid))
        LOG.debug("Running %s < %s", ref.label, marker)
        try:
            data = hook_runner.execute(ref, item, ctx)
        except Exception as exc:  # a bug of ours must still end in a signal, not a deployment left running
            LOG.exception("Running %s failed", ref.label)
            message = "heat-config could not run the hook: %s: %s" % (type(exc).__name__, exc)
            data = HookResult.failure(message).signal_data()
        self.finish(record, data, item)

    def hook_started(self, record: JournalRecord, pgid: int) -> None:
        """Journal the process group a hook (or a built-in hook's tool) now runs in: if this dispatcher
        dies, the next run stops that group before reporting the deployment (SPEC §12.3)."""
        record.hook_pgid, record.hook_proc = pgid, process_identity(pgid)
        self.journal.save(record)

    def refusal(self, item: Dict[str, Any], refused: Optional[str], group_problem: Optional[str],
                ref: Optional[hook_runner.HookRef]) -> Optional[str]:
        """Why this deployment is not run but reported failed (where a signal can go), or None to run it.

        A deployment whose signal URL is unusable is not run at all: its result could
        never reach Heat, and a URL such as ``file:`` is no place to send anything.
        """
        dep_id, group = item["id"], dep.group_of(item)
        signal_problem = route_problem(input_values(item))
        if signal_problem:
            return "deployment %s refused, not run: %s, so no signal could report its result" % (
                dep_id, signal_problem)
        if refused:
            return refused
        if group_problem:
            return "deployment %s: group %r refused: %s" % (dep_id, group, group_problem)
        if ref is None:
            return "deployment %s: %s" % (dep_id, hook_runner.no_hook_message(group, self.settings.environ))
        return None

    def finish(self, record: JournalRecord, data: Dict[str, Any], deployment: Dict[str, Any]) -> None:
        """Record the result (durably), write the debugging copy, then make the first signal attempt."""
        inputs = input_values(deployment)
        record.step, record.finished_at = FINISHED, now()
        if record.started_at is None:
            record.started_at = record.finished_at
        record.status_code = data.get("deploy_status_code") if isinstance(data, dict) else None
        outputs = deployment.get("outputs")
        record.failed = dep.signal_failed(outputs if isinstance(outputs, list) else [], data)
        if record.failed:
            record.error = _last_line(data.get("deploy_stderr")) if isinstance(data, dict) else ""
        mark_finished(self.journal, record, data, inputs, self.via_program)
        atomic_write(self.notify_file(record.id), pretty(data), 0o600)
        if record.signal == SIGNAL_PENDING:
            self.outbox.attempt(record, inputs)
        else:
            self.journal.close(record)

    def cleanup(self) -> None:
        """Deployments gone from the metadata with nothing left to send: drop their hook files and
        journal, and keep only a credential-free marker so they never run again (§11.11, §12.13.15)."""
        candidates = (set(self.journaled) | set(self.known)) - self.current
        records = [self.known.get(i) or self.journal.load(i) for i in sorted(candidates)]
        gone = [r for r in records if r is not None and (
            r.settled or r.step == RECEIVED or (r.step == RUNNING and not os.path.exists(self.marker(r.id))))]
        if not gone:
            return
        keep = self.current | set(self.outbox.pending)
        ctx = HookContext(environ=dict(self.settings.environ), gone_ids=[r.id for r in gone])
        for group in sorted({r.group for r in gone}):
            module = hooks.module(group) if group in hooks.BUILTIN else None
            if module is not None and hasattr(module, "cleanup"):
                try:
                    module.cleanup(keep, ctx)
                except Exception:
                    LOG.exception("Cleaning up after the %s hook failed", group)
        for record in gone:
            if os.path.exists(self.marker(record.id)):
                tombstone = {"id": record.id, "name": record.name, "group": record.group,
                             "removed_from_metadata": True}
                atomic_write(self.marker(record.id), pretty(tombstone), 0o600)
            try:
                os.unlink(self.notify_file(record.id))
            except FileNotFoundError:
                pass
            self.journal.remove(record.id)
            LOG.debug("Deployment %s left the metadata; its files are removed", record.id)


#: Characters of the last stderr line kept as the error ``status`` shows.
ERROR_CHARS = 300


def _proc_stat(pid: int) -> Optional[List[str]]:
    """The fields of ``/proc/<pid>/stat`` from the state on (field 3), or None when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode("ascii", "replace").split()
    except (OSError, IndexError):
        return None


def process_identity(pid: int, fields: Optional[List[str]] = None) -> Optional[str]:
    """What tells this process from a later one given the same pid: the boot it runs in and its start time."""
    fields = fields or _proc_stat(pid)
    if not fields or len(fields) < 20:
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = "?"
    return "%s %s" % (boot, fields[19])  # field 22, starttime


def _running(pid: int) -> bool:
    """Alive and not a zombie: an orphan's zombie may never be reaped where pid 1 does not reap."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _group_running(pgid: int) -> bool:
    """Whether any process of the group is still running (one pass over /proc)."""
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    for name in os.listdir("/proc"):
        fields = _proc_stat(int(name)) if name.isdigit() else None
        if fields and fields[0] != "Z" and len(fields) > 2 and fields[2] == str(pgid):
            return True
    return False


def stop_orphan(record: JournalRecord) -> None:
    """Stop the hook group of a dispatcher that died, if its leader still runs (SPEC §12.3).

    The group is stopped only when its leader is the very process the journal
    names (same boot, same start time): a pid the system has given to another
    process since is left alone.  SIGTERM, then SIGKILL after proc's grace period.
    """
    pgid = record.hook_pgid
    if not pgid:
        return
    fields = _proc_stat(pgid)
    if not fields or fields[0] == "Z" or process_identity(pgid, fields) != record.hook_proc:
        return
    LOG.warning("The hook of deployment %s is still running (process group %d); stopping it", record.id, pgid)
    proc.kill_group(pgid, proc.KILL_GRACE_S, gone=lambda: not _running(pgid))
    deadline = time.monotonic() + GROUP_EXIT_S
    while _group_running(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _last_line(text: Any) -> str:
    """The error ``status`` shows: the last non-blank line, redacted BEFORE it is cut, so a secret that
    straddles the cut cannot leave its first characters behind (issue 12 defect 13, SPEC §12.10)."""
    if not isinstance(text, str):
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return redact(lines[-1])[:ERROR_CHARS] if lines else ""


def main(settings: DispatchSettings, *, signals_only: bool = False) -> int:
    """SPEC §6.5: returns the dispatcher's exit status.

    ``signals_only`` retries the pending signals and nothing else: what the running
    agent does between polls (§12.4).
    """
    if signals_only:
        if os.path.isdir(settings.deployed_dir):
            dispatcher = Dispatcher(settings)
            dispatcher.run([], signals_only=True)
            write_metrics(dispatcher)
        return 0
    if not os.path.exists(settings.config_file):
        LOG.error("No config file %s", settings.config_file)
        return 1
    try:
        if stat.S_IMODE(os.lstat(settings.config_file).st_mode) != 0o600:
            os.chmod(settings.config_file, 0o600)
        prepare_deployed_dir(settings)
    except OSError as exc:
        LOG.error("%s: %s", exc.filename or settings.config_file, exc.strerror)
        return 1
    try:
        deployments = contract.read_deployments(settings.config_file) or []
    except contract.BadDeploymentsFile as exc:
        LOG.error("%s", exc)
        return 1
    dispatcher = Dispatcher(settings)
    dispatcher.run(deployments, signals_only=signals_only)
    write_metrics(dispatcher)
    return 0


def write_metrics(dispatcher: Dispatcher) -> None:
    """After every run, with the journal lock still held: the metrics file, when one is asked for (§12.15)."""
    settings = dispatcher.settings
    totals = dispatcher.journal.count_signal_attempts(dispatcher.outbox.results)
    if not settings.metrics_file:
        return
    from agent_common import metrics  # only a run that writes metrics pays for it
    from heat_config.status import metric_families

    metrics.write_if_asked(settings.metrics_file,
                           lambda: metric_families(settings.config_file, settings.deployed_dir, totals))

"""The polling loop: collect, store, run the command on change, sleep (SPEC §2.14–§2.17).

A collector that fails keeps its last good cache files in ``OS_CONFIG_FILES`` and
is retried on its own backoff, capped at the polling interval; the others go on.
A key that disappears is a change, and its cache files are removed once the command
has succeeded.  The sleep goes back to the minimum after a change (never below ten
times what the last collection took), grows to the maximum while nothing changes,
and is ``ctx.wakeup.wait`` so a collector can wake the loop.  SIGHUP and configuration changes re-execute the agent between polls, and
the command may have a timeout.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

from agent_common.journal_layout import has_unsettled
from agent_common.record import Record, fresh
from os_collect_config import collectors as registry
from os_collect_config.cache import MISSING, Cache, check_key
from os_collect_config.collectors.base import (
    CollectContext, Collected, Collector, NotConfigured, StateStore, Unavailable,
)
from os_collect_config.config import ConfigError, Settings
from os_collect_config.merge import as_mapping

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

    from agent_common.backoff import Backoff

LOG = logging.getLogger("os-collect-config")
#: Prefix of the loop's own documents in ``<cachedir>/.agent-state/``.
STATE_NAME = "os-collect-config"
#: Pending heat-config signals: first retry between polls after this many seconds, backing off to the cap.
SIGNAL_RETRY_FIRST_S, SIGNAL_RETRY_CAP_S = 5.0, 300.0
#: One between-polls delivery run may take this long (one attempt per pending signal).
SIGNAL_RETRY_TIMEOUT_S = 120.0
#: A sleep shorter than the polling interval lasts at least the last collection's time divided by this.
RAMP_SERVER_SHARE = 0.1


class SourceHealth(Record):
    """Backoff of one failing collector: when to try it next (continuous mode only)."""

    backoff: Backoff
    next_try: float = 0.0
    last_error: str = ""

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float, reason: str, retry_after: Optional[float] = None) -> float:
        """Schedule the next try: jittered backoff, and never sooner than the server's Retry-After."""
        self.last_error = reason
        delay = self.backoff.next_delay(retry_after)
        self.next_try = now + delay
        return delay

    def try_now(self) -> None:
        """Due at the next poll; the failure count stays, so a success still logs the recovery."""
        self.next_try = 0.0

    def recovered(self) -> bool:
        was_failing = self.backoff.failures > 0
        self.backoff.reset()
        self.next_try = 0.0
        return was_failing


class Poll(Record):
    """One poll's outcome: the keys in force in collection order and what changed."""

    pairs: List[Collected] = fresh(list)
    paths: List[str] = fresh(list)
    changed: List[str] = fresh(list)
    removed: List[str] = fresh(list)
    #: The keys each source gave (fresh or last good), by source name: what a commit records.
    sources: Dict[str, List[str]] = fresh(dict)

    @property
    def keys(self) -> List[str]:
        return [k for k, _ in self.pairs]


class Agent:
    """One os-collect-config process: its collectors (kept for the whole process), cache and state."""

    def __init__(self, settings: Settings, argv: Sequence[str],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.argv = list(argv)
        self.monotonic = monotonic
        self.store_mode = bool(settings.command and not settings.print_only)
        self.cache = Cache(settings.cachedir, settings.backup_cachedir)
        self.ctx = CollectContext(
            cachedir=settings.cachedir,
            deployment_keys=tuple(settings.deployment_key),
            print_mode=not self.store_mode,
            groups=settings.groups,
        )
        self.state = StateStore(settings.cachedir, STATE_NAME)
        #: The sources that answered in the poll under way (only they can report a key gone).
        self._fresh: set = set()
        #: Seconds the last poll's collection took (the slowest source; not the command): see ``_spare_server``.
        self.collect_took = 0.0
        #: Backoff of the between-polls delivery of pending heat-config signals, made when first needed.
        self.signal_health: Optional[SourceHealth] = None
        self.min_interval, self.max_interval = settings.min_polling_interval, settings.polling_interval
        if self.min_interval > self.max_interval:
            LOG.warning("min_polling_interval %.2f is larger than polling_interval %.2f; using %.2f for both.",
                        self.min_interval, self.max_interval, self.max_interval)
            self.min_interval = self.max_interval
        self.collectors: List[Tuple[str, Optional[Collector]]] = [
            (name, self._instantiate(name)) for name in settings.collectors
        ]
        self.health: Dict[str, SourceHealth] = {}
        self.reported_unconfigured: set = set()
        self.reexec_requested = False
        #: Draw the next full-length sleep at random (see ``loop``): set at start.
        self.desync = True
        self._saved_health = self.state.load("health") if self.store_mode else None
        self.metrics = None  # SPEC §12.15: only with a metrics file, imported only then
        if settings.metrics_file or os.environ.get("OS_CONFIG_AGENTS_METRICS_FILE"):
            from os_collect_config.poll_metrics import PollMetrics

            self.metrics = PollMetrics.create(settings.metrics_file, self.state, self.store_mode)

    # -- collectors -------------------------------------------------------------------------
    def _instantiate(self, name: str) -> Optional[Collector]:
        try:
            cls = registry.load(name)
        except registry.CollectorMissing as exc:
            LOG.debug("%s", exc)
            return None
        return cls(dict(self.settings.groups.get(name, {})), self.ctx)

    def _health(self, name: str) -> SourceHealth:
        """The source's backoff; its failure count survives restarts (``.agent-state``), so a re-exec does
        not reset a source that has been down for an hour to hammering it every second."""
        if name not in self.health:
            from agent_common.backoff import Backoff

            cap = max(self.max_interval, 1.0)
            health = SourceHealth(Backoff(initial=min(max(self.min_interval, 1.0), cap), cap=cap))
            saved = self._saved_health.get(name) if isinstance(self._saved_health, dict) else None
            if isinstance(saved, dict) and isinstance(saved.get("failures"), int):
                health.backoff.failures = max(0, saved["failures"])
            self.health[name] = health
        return self.health[name]

    def _save_health(self) -> None:
        self.state.save("health", {name: {"failures": h.backoff.failures, "last_error": h.last_error}
                                   for name, h in self.health.items() if h.backoff.failures})

    def _collect_one(self, name: str, collector: Optional[Collector]) -> Optional[List[Collected]]:
        """Fresh pairs from the source, or its last good pairs from the cache, or None when not configured."""
        health = self._health(name)
        now = self.monotonic()
        continuous = not self.settings.one_time and self.store_mode
        if continuous and not health.due(now):
            return self._last_good(name)
        try:
            if collector is None:
                raise NotConfigured("collector %s is not installed" % name)
            pairs = list(collector.collect())
        except NotConfigured as exc:
            self._report_unconfigured(name, exc)
            health.recovered()
            return None
        except Unavailable as exc:
            reason, wait = str(exc), exc.retry_after
        except Exception as exc:  # a collector bug must not stop the agent (SPEC §5.9: no crash)
            LOG.debug("Source [%s] failed", name, exc_info=True)
            reason, wait = "%s: %s" % (type(exc).__name__, exc), None
        else:
            if self.metrics:
                self.metrics.polled(name, True)
            if health.recovered():  # the agent's phase is kept: it tried at that phase all along (issue 16)
                LOG.info("Source [%s] available again.", name)
            self.reported_unconfigured.discard(name)
            self._fresh.add(name)
            return pairs
        if self.metrics:
            self.metrics.polled(name, False)
        last = self._last_good(name)
        tail = "keeping its last good data" if last else "no earlier data"
        if continuous:  # the wait counts from the answer: a Retry-After means "after this reply" (RFC 9110)
            LOG.warning("Source [%s] Unavailable. %s; %s, next try in %.1f s.",
                        name, reason or "", tail, health.failed(self.monotonic(), reason, wait))
        else:
            LOG.warning("Source [%s] Unavailable. %s; %s.", name, reason or "", tail)
        return last

    def _report_unconfigured(self, name: str, exc: Exception) -> None:
        LOG.debug("Source [%s] Not configured. %s", name, exc)
        if self.settings.collectors_explicit and name not in self.reported_unconfigured:
            LOG.info("Source [%s] Not configured: %s", name, exc)
        self.reported_unconfigured.add(name)

    def _last_good(self, name: str) -> List[Collected]:
        """The keys ``name`` produced last time it worked, with their cached values (weakness 3)."""
        sources = self.state.load("sources")
        keys = sources.get(name) if isinstance(sources, dict) else None
        if not isinstance(keys, list):
            keys = [name]  # the main key of every single-key collector, also for caches left by the original
        out = []
        for key in keys:
            if isinstance(key, str) and check_key(key, name, registry.REGISTRY) is None:
                value = self.cache.load(key)
                if value is not MISSING:
                    out.append((key, value))
        return out

    # -- one poll ---------------------------------------------------------------------------
    def _collect_all(self) -> List[Optional[List[Collected]]]:
        """Every collector's outcome, in list order; they run side by side so a slow source (up to its
        timeout) does not hold up the others' changes."""
        for name, _ in self.collectors:
            self._health(name)  # created before the threads share the table
        if len(self.collectors) < 2:
            return [self._collect_one(name, collector) for name, collector in self.collectors]
        import threading

        outcomes: List[Any] = [None] * len(self.collectors)

        def work(index: int, name: str, collector: Optional[Collector]) -> None:
            try:
                outcomes[index] = (True, self._collect_one(name, collector))
            except BaseException as exc:  # handed to the main thread below
                outcomes[index] = (False, exc)

        threads = [threading.Thread(target=work, args=(i, name, collector), name="collect-%s" % name, daemon=True)
                   for i, (name, collector) in enumerate(self.collectors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        results = []
        for ok, value in outcomes:
            if not ok:
                raise value
            results.append(value)
        return results

    def poll(self) -> Poll:
        result = Poll()
        sources: Dict[str, List[str]] = {}
        self._fresh = set()
        began = self.monotonic()
        outcomes = self._collect_all()
        self.collect_took = self.monotonic() - began
        for (name, _), pairs in zip(self.collectors, outcomes):
            if pairs is None:
                continue
            kept = []
            for key, value in pairs:
                why = check_key(key, name, registry.REGISTRY)
                if why:
                    LOG.warning("Source [%s] ignoring a key: %s.", name, why)
                    continue
                kept.append((key, value))
            sources[name] = [k for k, _ in kept]
            for key, value in kept:
                result.pairs.append((key, value))
                if not self.store_mode:
                    continue
                # A last-good value is its own cache file: storing it writes nothing, but a value that a
                # failed command never committed still differs from .last and is retried (SPEC §2.14.2).
                changed, path = self.cache.store(key, value)
                if changed and key not in result.changed:
                    result.changed.append(key)
                    if self.metrics:
                        self.metrics.changed(name)
                result.paths.append(path)
        if self.store_mode:
            self.state.save("sources", sources)
            self._save_health()
            result.removed = self._vanished(sources)
        if self.metrics:
            self.metrics.write()
        result.sources = sources
        return result

    def _vanished(self, sources: Dict[str, List[str]]) -> List[str]:
        """Keys a source gave at the last commit and no longer gives, though it answered just now (weakness 5).

        Only a source that answered can say a key is gone: a source that is down, no
        longer configured or no longer in the collector list removes nothing, so a
        transport that is not up yet never makes the command run on no metadata.
        """
        committed = self.state.load("committed")
        if not isinstance(committed, dict):  # none yet, or the key list of an older version
            return []
        present = {k for keys in sources.values() for k in keys}
        return [k for name in self._fresh if isinstance(committed.get(name), list)
                for k in committed[name] if isinstance(k, str) and k not in present]

    def run_command(self, paths: Sequence[str]) -> int:
        from agent_common import proc  # only store mode runs a command: --print does not pay for subprocess

        command = self.settings.command
        assert command, "store mode, the only caller, has a command"
        env = dict(os.environ)
        env["OS_CONFIG_FILES"] = ":".join(paths)
        LOG.info("Executing %s with OS_CONFIG_FILES=%s", command, env["OS_CONFIG_FILES"])
        res = proc.run(command, shell=True, capture=False, env=env,
                       timeout=self.settings.command_timeout)
        if res.timed_out:
            LOG.error("Command timed out after %s seconds and was killed.", _num(self.settings.command_timeout))
        status = proc.TIMEOUT_STATUS if res.timed_out else res.returncode if res.returncode >= 0 else 256 + res.returncode
        if self.metrics:
            self.metrics.ran_command(status)
            self.metrics.write()
        return status

    def store_poll(self) -> Tuple[bool, int]:
        """Collect, store, run the command if needed and commit; (command ran and succeeded, status)."""
        result = self.poll()
        if result.removed:
            LOG.info("No source provides %s any more.", ", ".join(result.removed))
        if not (result.changed or result.removed or self.settings.force):
            LOG.debug("No changes detected.")
            if not isinstance(self.state.load("committed"), dict):
                self.state.save("committed", result.sources)
            return False, 0
        if result.changed or result.removed:  # --force alone rewrites neither (SPEC §2.13.3)
            self.cache.write_file_list(result.keys)
            try:
                self.cache.backup()
            except OSError as exc:  # the backup is a convenience copy: it must not block the command
                LOG.warning("Cannot refresh the backup %s: %s", self.settings.backup_cachedir, exc)
        status = self.run_command(result.paths)
        if status != 0:
            LOG.error("Command failed, will not cache new data. Command exited with status %d.", status)
            return False, status
        self.cache.commit(result.changed)
        stale = [k for k in result.removed if check_key(k, k, registry.REGISTRY) is None]
        if stale:
            self.cache.remove(stale)
        self.state.save("committed", result.sources)
        return True, 0

    # -- process ----------------------------------------------------------------------------
    def run(self) -> int:
        settings = self.settings
        self._install_signals()
        LOG.debug("Starting (pid %d) with collectors %s.", os.getpid(), " ".join(settings.collectors))
        if settings.splay > 0 and not settings.one_time:
            import random

            pause = random.uniform(0, settings.splay)  # a float, fractions included (weakness 13)
            LOG.debug("Splay: sleeping %.3f seconds before the first poll.", pause)
            time.sleep(pause)
        try:
            if not self.store_mode:
                return self.print_once()
            try:
                self.cache.ensure()
            except OSError as exc:
                raise ConfigError("cachedir %s: %s" % (settings.cachedir, exc.strerror or exc)) from exc
            return self.loop()
        finally:
            self.close()

    def loop(self) -> int:
        """Store mode: poll, run, sleep; returns only with --one-time (or --force)."""
        settings = self.settings
        fingerprint = settings.watch.baseline
        interval = self.min_interval
        while True:
            began = self.monotonic()
            succeeded, status = self._step("Poll", self.store_poll, (False, 1))
            if self.reexec_requested:
                self.reexec("Signal received. Re-executing %s" % self.argv)
            if settings.one_time:
                return status
            if settings.watch.fingerprint() != fingerprint:
                self.reexec("Configuration changed. Re-executing %s" % self.argv)
            self.retry_pending_signals()
            interval = self._spare_server(self.min_interval if succeeded else min(interval * 2, self.max_interval))
            pause = interval
            if status != 0:  # a failed command is retried on a jittered backoff, not in lock-step (weakness 14)
                import random

                pause = random.uniform(interval / 2, interval)
            elif self.desync and interval >= self.max_interval:
                pause = self._random_phase(interval)
            elif interval >= self.max_interval:
                pause = self._keep_phase(interval, self.monotonic() - began)
            LOG.info("Sleeping %.2f seconds.", pause)
            self.ctx.wakeup.wait(pause)
            self.ctx.wakeup.clear()
            for name in self.ctx.take_woken():
                self._health(name).try_now()
            if self.reexec_requested:
                self.reexec("Signal received. Re-executing %s" % self.argv)

    def _spare_server(self, interval: float) -> float:
        """``interval``, or longer when the sources were slow to answer: the quick polls after a change end
        when they would keep a server busy (bench/FLEET.md, cfn at N = 20).

        The sleep goes back to ``min_polling_interval`` after a change (weakness 14) so that a
        follow-up deployment is seen within seconds.  For one server that is cheap.  A change
        that reaches the whole fleet at once (a stack UPDATE) makes every agent poll five times
        in half a minute, and where each poll costs the server (cfn: an ec2tokens validation,
        0.6 CPU seconds at Keystone) their answers slow down, the next ramp polls time out,
        and agents that have not seen the change yet wait another interval.  A sleep at least
        ten times the time the last collection took keeps one agent's ramp below a tenth of a
        server's time however loaded it is: a fast server (heat: milliseconds) keeps the whole
        ramp, a loaded one ends it.
        """
        floor = self.collect_took / RAMP_SERVER_SHARE
        if interval >= floor or interval >= self.max_interval:
            return interval
        LOG.debug("The last collection took %.2f seconds: sleeping at least %.2f.", self.collect_took, floor)
        return min(floor, self.max_interval)

    def _random_phase(self, interval: float) -> float:
        """One sleep drawn from (0, interval]: this agent's polls get a phase of their own (issue 16).

        Agents started together (a fleet booted at once), or released together by a server
        that stalled and then answered every waiting request at the same instant, would
        otherwise poll in lock-step for ever, and the control plane would see the whole
        fleet in one second out of every ``polling_interval``.  Done once, at the first
        full-length sleep after start: it costs at most one poll.  Never again for the
        same agent: a fleet redrawing its phases at once (after an outage, say) would add a
        poll from every agent within one interval, twice the steady rate at its end.
        """
        import random

        self.desync = False
        pause = interval - random.uniform(0, interval)
        LOG.debug("Spreading polls: this sleep is %.2f of %.2f seconds.", pause, interval)
        return pause

    def _keep_phase(self, interval: float, took: float) -> float:
        """The sleep that puts the next poll whole intervals after the start of this one (a fixed rate).

        Counting the interval from the end of a poll, as the original does, couples the
        agents through the server: a busy server answers the agents of a burst later than
        the others, so those start their next polls later, catch up with the ones ahead and
        the burst grows (the synchronisation of periodic messages; 200 agents in
        bench/FLEET.md polled in bursts of 3.5 times the mean rate).  A server that stalls and
        then answers every waiting agent at once would line them up the same way.  Counted
        from the start, no answer moves any agent's phase: the fleet stays as spread out as
        its first random sleep made it.
        """
        pause = interval - took % interval
        LOG.debug("Keeping this agent's phase after a %.2f-second poll: this sleep is %.2f seconds.", took, pause)
        return pause

    def _step(self, what: str, step: Callable[[], Any], failed: Any) -> Any:
        """``step()``, or ``failed`` after logging in one line what went wrong (SPEC §2.14, §2.18).

        Continuous mode never exits on its own: whatever one poll, command or signal
        retry raises costs that step and a backoff, never the agent, which systemd would
        otherwise restart into the same failure.  An OSError (a full or read-only disk, a
        cache file that cannot be replaced) is the expected case.  Any other exception is
        a bug of ours: the ones outside input could reach (a backoff overflowing after a
        long outage, damaged state files) are fixed where they arose, and this keeps the
        next unknown one from ending the agent.  The message goes through the log filter
        that redacts secrets; the traceback is kept for --debug.
        """
        try:
            return step()
        except Exception as exc:
            if isinstance(exc, OSError):  # disk full, read-only fs...: the old state stays in force
                target = exc.filename2 or exc.filename  # a rename names the file it replaces second
                where = " (%s)" % target if target else ""
                LOG.error("%s failed: %s%s; trying again later.", what, exc.strerror or exc, where)
            else:
                LOG.error("%s failed: %s: %s; trying again later.", what, type(exc).__name__, exc)
            LOG.debug("%s failed", what, exc_info=True)
            return failed

    def retry_pending_signals(self) -> None:
        """Deliver the heat-config signals a dispatcher run left pending, between polls (SPEC §12.4).

        Without this a signal whose endpoint was down waits until the metadata changes
        again, which for a finished stack is never, and Heat times out.  The check is one
        directory listing; the delivery is the same ``heat-config dispatch --signals-only``
        a user would run (one attempt per signal, so it never holds the loop for long),
        spaced by its own backoff.
        """
        from agent_common.paths import get_path

        if not has_unsettled(get_path("heat_config_deployed")):
            if self.signal_health is not None:
                self.signal_health.recovered()
            return
        if self.signal_health is None:
            from agent_common.backoff import Backoff

            self.signal_health = SourceHealth(Backoff(initial=SIGNAL_RETRY_FIRST_S, cap=SIGNAL_RETRY_CAP_S))
        now = self.monotonic()
        if not self.signal_health.due(now):
            return
        reason = self._step("Retrying pending heat-config signals", self._deliver_pending, "an error (see above)")
        if reason is None:
            LOG.info("Pending heat-config signals delivered.")
            self.signal_health.recovered()
        else:
            LOG.warning("heat-config signals still pending (%s); next try in %.1f s.",
                        reason, self.signal_health.failed(self.monotonic(), reason))

    @staticmethod
    def _deliver_pending() -> Optional[str]:
        """One ``heat-config dispatch --signals-only`` run: None when nothing is left pending, else why."""
        from agent_common import proc
        from agent_common.paths import get_path

        env = dict(os.environ, HEAT_CONFIG_SIGNAL_RETRY_S="0")
        result = proc.run([sys.executable, "-m", "heat_config", "dispatch", "--signals-only"], env=env,
                          capture=False, timeout=SIGNAL_RETRY_TIMEOUT_S)
        if result.timed_out:
            return "the delivery run timed out after %s s" % _num(SIGNAL_RETRY_TIMEOUT_S)
        if result.returncode != 0:
            return "heat-config dispatch --signals-only exited with status %d" % result.returncode
        if has_unsettled(get_path("heat_config_deployed")):
            return "not yet accepted by their endpoints"
        return None

    def print_once(self) -> int:
        result = self.poll()
        sys.stdout.write(json.dumps(as_mapping(result.pairs), indent=1) + "\n")
        sys.stdout.flush()
        return 0

    def _install_signals(self) -> None:
        def on_hup(signum: int, frame: Any) -> None:
            self.reexec_requested = True
            self.ctx.wakeup.set()

        signal.signal(signal.SIGHUP, on_hup)

    def close(self) -> None:
        for _, collector in self.collectors:
            if collector is not None:
                collector.close()

    def reexec(self, message: str) -> None:
        """Start this program again with the same arguments, at a safe point (SPEC §2.17, weakness 15)."""
        LOG.info("%s", message)
        self.close()
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        exe, argv = reexec_target(self.argv)
        self.reexec_requested = False
        try:
            os.execv(exe, argv)  # our fds are non-inheritable (PEP 446): nothing leaks into the new process
        except OSError as exc:
            LOG.error("Cannot re-execute %s: %s; going on with the current configuration.", exe, exc)


def reexec_target(argv: Sequence[str]) -> Tuple[str, List[str]]:
    """What to exec: argv[0] itself if it is runnable, or found on PATH, else this interpreter with ``-m``."""
    import shutil

    first = argv[0] if argv else ""
    if first and os.sep in first and os.access(first, os.X_OK) and not first.endswith(".py"):
        return first, list(argv)
    found = shutil.which(first) if first and os.sep not in first else None
    if found:
        return found, list(argv)
    return sys.executable, [sys.executable, "-m", "os_collect_config"] + list(argv[1:])


def _num(value: Optional[float]) -> str:
    return ("%g" % value) if value is not None else "?"

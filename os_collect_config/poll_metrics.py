"""os-collect-config's metrics (SPEC §12.15): per collector, the time of its last successful poll, its
polls, failures and changes seen; the command's runs and failures.

The counts live in the agent's state (``.agent-state``) in store mode, so that they keep
counting across re-executions and ``--one-time`` runs, as Prometheus counters must.
Only a configured metrics file creates this object: the idle agent without one pays nothing.
"""
from __future__ import annotations

import os
import threading
import time

from agent_common import metrics

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List, Optional

    from os_collect_config.collectors.base import StateStore

STATE_KEY = "metrics"
COUNTS = ("polls", "failures", "changes")


class PollMetrics:
    def __init__(self, path: str, state: Optional[StateStore]) -> None:
        self.path = path
        self.state = state
        saved = state.load(STATE_KEY) if state is not None else None
        self.collectors: Dict[str, Dict[str, float]] = {}
        self.command = {"runs": 0, "failures": 0}
        if isinstance(saved, dict):
            for name, counts in (saved.get("collectors") or {}).items():
                if isinstance(counts, dict):
                    self.collectors[name] = {k: v for k, v in counts.items() if type(v) in (int, float)}
            command = saved.get("command")
            if isinstance(command, dict):
                self.command.update({k: v for k, v in command.items() if k in self.command and type(v) is int})
        self._lock = threading.Lock()

    @classmethod
    def create(cls, option: Optional[str], state: StateStore, persistent: bool) -> Optional["PollMetrics"]:
        """The metrics of this agent when a file is asked for (option or environment), else None."""
        path = metrics.metrics_file(option)
        return cls(path, state if persistent else None) if path else None

    def _collector(self, name: str) -> Dict[str, float]:
        return self.collectors.setdefault(name, {k: 0 for k in COUNTS})

    def polled(self, name: str, ok: bool) -> None:
        """One poll of collector ``name`` (called from the collectors' threads)."""
        with self._lock:
            counts = self._collector(name)
            counts["polls"] = counts.get("polls", 0) + 1
            if ok:
                counts["last_success"] = time.time()
            else:
                counts["failures"] = counts.get("failures", 0) + 1

    def changed(self, name: str) -> None:
        with self._lock:
            counts = self._collector(name)
            counts["changes"] = counts.get("changes", 0) + 1

    def ran_command(self, status: int) -> None:
        self.command["runs"] += 1
        if status != 0:
            self.command["failures"] += 1

    def write(self) -> None:
        """Save the counts and replace the metrics file (after every poll and command run)."""
        if self.state is not None:
            try:
                self.state.save(STATE_KEY, {"collectors": self.collectors, "command": self.command})
            except OSError:
                pass  # the metrics file still shows this process's counts; the state write is retried next poll
        metrics.write_if_asked(self.path, self.families, os.environ)

    def families(self) -> List[metrics.Family]:
        last = metrics.Family("collector_last_success_timestamp_seconds", "gauge",
                              "When each collector last returned metadata (Unix time)")
        polls = metrics.Family("collector_polls_total", "counter", "Polls of each collector")
        failures = metrics.Family("collector_failures_total", "counter", "Polls of each collector that failed")
        changes = metrics.Family("collector_changes_total", "counter",
                                 "Metadata keys from each collector seen changed")
        for name, counts in sorted(self.collectors.items()):
            if "last_success" in counts:
                last.add(counts["last_success"], collector=name)
            polls.add(counts.get("polls", 0), collector=name)
            failures.add(counts.get("failures", 0), collector=name)
            changes.add(counts.get("changes", 0), collector=name)
        runs = metrics.Family("command_runs_total", "counter", "Runs of the command (os-refresh-config)")
        failed = metrics.Family("command_failures_total", "counter", "Runs of the command that failed")
        runs.add(self.command["runs"])
        failed.add(self.command["failures"])
        return [last, polls, failures, changes, runs, failed]

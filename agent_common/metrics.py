"""Metrics in the Prometheus text exposition format, written atomically to a file (SPEC §12.15).

The node_exporter textfile-collector convention: a tool replaces its ``.prom`` file
after every poll or run, and node_exporter serves it.  os-collect-config and
heat-config may be given the same file (``OS_CONFIG_AGENTS_METRICS_FILE`` set for the
whole agent is inherited by heat-config); each then replaces only its own metric
families and keeps the other's, under a lock, so neither hides the other.

Label values pass through the log redaction, so a secret registered for the logs can
never reach the file either (SPEC §12.10); callers only label with names, ids and states.

On the idle agent's path: imported only when a metrics file is configured.
"""
from __future__ import annotations

import fcntl
import math
import os

from agent_common.atomic import atomic_write
from agent_common.logs import redact

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

PREFIX = "os_config_agents_"
ENV = "OS_CONFIG_AGENTS_METRICS_FILE"
#: node_exporter reads the file as another user: metrics hold no secret, so the file is world-readable.
FILE_MODE = 0o644


class Family:
    """One metric family: its name (``PREFIX`` added), type, help text and samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        assert kind in ("counter", "gauge")
        self.name = PREFIX + name
        self.kind = kind
        self.help = help_text
        self.samples: List[Tuple[Dict[str, str], float]] = []

    def add(self, value: float, **labels: str) -> "Family":
        self.samples.append((labels, value))
        return self


def metrics_file(option: Optional[str], environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """The file to write: the ``--metrics-file`` option, else ``$OS_CONFIG_AGENTS_METRICS_FILE``, else none."""
    env = os.environ if environ is None else environ
    return option or env.get(ENV) or None


def _label_value(value: str) -> str:
    return redact(str(value)).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool) or (isinstance(value, int)):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The families as Prometheus text (exposition format 0.0.4)."""
    lines = []
    for family in families:
        lines.append("# HELP %s %s" % (family.name, family.help.replace("\\", "\\\\").replace("\n", "\\n")))
        lines.append("# TYPE %s %s" % (family.name, family.kind))
        for labels, value in family.samples:
            text = ",".join('%s="%s"' % (k, _label_value(v)) for k, v in sorted(labels.items()))
            lines.append("%s%s %s" % (family.name, "{%s}" % text if text else "", _number(value)))
    return "\n".join(lines) + "\n" if lines else ""


def _other_blocks(text: str, ours: Iterable[str]) -> str:
    """The families in ``text`` (blocks starting at their ``# HELP`` line) that are not ``ours``."""
    mine = set(ours)
    kept: List[str] = []
    keep = False
    for line in text.splitlines():
        if line.startswith("# HELP "):
            keep = line.split()[2] not in mine
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def write(path: str, families: List[Family]) -> None:
    """Replace this tool's families in ``path``, atomically, keeping any other tool's."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                existing = f.read()
        except FileNotFoundError:
            existing = ""
        atomic_write(path, render(families) + _other_blocks(existing, [f.name for f in families]), FILE_MODE,
                     sync=False)


def write_if_asked(option: Optional[str], families_of: Callable[[], List[Family]],
                   environ: Optional[Mapping[str, str]] = None) -> None:
    """Write the metrics when a file is configured; a metrics file that cannot be written is logged,
    never a reason for the tool to fail."""
    path = metrics_file(option, environ)
    if not path:
        return
    try:
        write(path, families_of())
    except OSError as exc:
        import logging

        logging.getLogger(__name__).warning("Cannot write the metrics file %s: %s", path, exc.strerror or exc)

"""heat_local: metadata files written by heat-cfntools / cloud-init (SPEC §2.11).

The files' top-level objects are shallow-merged, later files winning, under the key
``heat_local``.  No file at all means there is no such source on this host (not
configured, logged quietly); files that exist but cannot be used make the source
unavailable, so the last good metadata stays in force.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging

from agent_common.documents import loads_json, read_bytes
from agent_common.paths import get_path
from os_collect_config.collectors.base import Collected, Collector, NotConfigured, Option, Unavailable

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, List

LOG = logging.getLogger("os_collect_config.heat_local")  # the original's logger name (SPEC §2.19.3)


class HeatLocalCollector(Collector):
    name = "heat_local"
    options = (
        Option("path", type="multi", default=[get_path("occ_heat_local_path")],
               help="Local path(s) to read for Metadata."),
    )

    def collect(self) -> List[Collected]:
        paths = self.conf.get("path") or []
        merged: Any = None
        found = False
        rejected: List[str] = []
        for path in paths:
            try:
                data = read_bytes(path)  # a FIFO is refused, not waited on for ever
            except FileNotFoundError:
                continue
            except OSError as exc:
                found = True
                LOG.warning("Cannot read %s: %s", path, exc.strerror or exc)
                continue
            found = True
            try:
                value = loads_json(data, path)
            except ValueError as exc:  # not JSON, not UTF-8, nested too deeply: the message names the file
                LOG.warning("%s; skipped.", exc)
                rejected.append(path)
                continue
            if not merged:
                merged = value
            elif isinstance(merged, dict) and isinstance(value, dict):
                merged.update(value)
            else:
                LOG.warning("%s does not hold a JSON object; not merged.", path)
        if not found:
            raise NotConfigured("Local metadata not found (%s)" % paths)
        if not merged:
            if not rejected:  # after a warning naming the broken file, "not found" would mislead
                LOG.info("Local metadata not found (%s)", paths)
            raise Unavailable("no usable metadata in %s" % ", ".join(rejected or paths))
        return [(self.name, merged)]

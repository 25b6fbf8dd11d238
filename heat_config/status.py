"""``heat-config status``: what happened to each deployment, read from the journal (SPEC §12.8).

It runs nothing and changes nothing: it reads the deployments file and the
journal, and tells "running" from "interrupted" by whether a dispatcher holds
the journal lock.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional, TextIO

from agent_common import deployment_contract as contract
from agent_common.deployment_contract import register_input_secrets
from agent_common.logs import redact
from heat_config import deployment as dep
from heat_config.journal import (
    FINISHED,
    RECEIVED,
    RUNNING,
    SIGNAL_NONE,
    SIGNAL_PENDING,
    SIGNALLED,
    CorruptRecord,
    Journal,
    JournalRecord,
)

FIELDS = ("id", "name", "group", "action", "state", "status_code", "duration_s", "signal", "error")
EXIT_OK, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


def _row(**values: Any) -> Dict[str, Any]:
    row = {k: None for k in FIELDS}
    row.update(values)
    return row


def _from_record(record: JournalRecord, dispatcher_running: bool) -> Dict[str, Any]:
    if record.step == RECEIVED:
        state = "pending"
    elif record.step == RUNNING:
        state = "running" if dispatcher_running else "interrupted"
    elif record.step in (FINISHED, SIGNALLED):
        state = "failed" if record.failed else "succeeded"
    else:
        state = "pending"
    if record.interrupted:
        state = "interrupted" if record.step == RUNNING else "failed"
    error = record.error
    if record.signal_error and record.signal != "sent":
        error = ("%s; signal: %s" % (error, record.signal_error)) if error else "signal: " + record.signal_error
    return _row(id=record.id, name=record.name, group=record.group, action=record.action, state=state,
                status_code=record.status_code, duration_s=record.duration_s, signal=record.signal, error=error)


def _corrupt(dep_id: str, error: str) -> Dict[str, Any]:
    """A deployment whose journal record is unusable: its outcome is unknown, so it is not reported good."""
    return _row(id=dep_id, state="failed", signal=SIGNAL_NONE, error=error)


def _journal_rows(journal: Journal, running: bool, seen: set) -> List[Dict[str, Any]]:
    """Rows of deployments no longer current: a signal still pending, or a record that is unusable."""
    rows = []
    for dep_id in sorted(journal.index()[0]):
        if dep_id in seen:
            continue
        try:
            record = journal.read(dep_id)
        except CorruptRecord as exc:
            rows.append(_corrupt(dep_id, "journal record unusable: %s" % exc))
            continue
        if record is not None and record.signal == SIGNAL_PENDING:
            rows.append(_from_record(record, running))
    return rows


def journal_problem(deployed_dir: str) -> Optional[str]:
    """A journal path that is not a directory (the records cannot be read; the dispatcher repairs it)."""
    path = Journal(deployed_dir).dir
    if os.path.lexists(path) and not os.path.isdir(path):
        return "%s is not a directory; the next heat-config run moves it aside" % path
    return None


def collect(config_file: str, deployed_dir: str) -> "tuple[List[Dict[str, Any]], Optional[str]]":
    """The rows for the current deployments plus any with a signal still pending, and a file problem if any."""
    journal = Journal(deployed_dir)
    running = journal.dispatcher_running()
    problem = None
    try:
        items = contract.read_deployments(config_file) or []
    except contract.BadDeploymentsFile as exc:
        items, problem = [], str(exc)
    rows: List[Dict[str, Any]] = []
    seen = set()
    set_aside = journal.set_aside_copies()
    for item in items:
        refused = contract.deployment_problem(item)
        if not isinstance(item, dict) or contract.id_problem(item.get("id")):  # never run, never signalled (§12.13.8)
            item = item if isinstance(item, dict) else {}
            rows.append(_row(id=item.get("id"), name=item.get("name"), group=dep.group_of(item),
                             action=dep.action_of(item), state="failed", signal=SIGNAL_NONE,
                             error="refused: %s" % refused))
            continue
        item = dict(item)
        register_input_secrets(item)  # a hook may have echoed one into the error shown below (§12.10)
        if refused is None and not dep.resolve_component(item):
            continue  # no config for this action: the dispatcher leaves it alone, so does status
        group = dep.group_of(item)
        seen.add(item["id"])
        try:
            record = journal.read(item["id"])
        except CorruptRecord as exc:
            rows.append(dict(_corrupt(item["id"], "journal record unusable: %s" % exc),
                             name=item.get("name"), group=group, action=dep.action_of(item)))
            continue
        marked = os.path.exists(os.path.join(deployed_dir, item["id"] + ".json"))
        if record is not None:
            rows.append(_from_record(record, running))
        elif marked and item["id"] in set_aside:
            rows.append(dict(_corrupt(item["id"], "journal record was corrupt; set aside as %s"
                                      % set_aside[item["id"]]),
                             name=item.get("name"), group=group, action=dep.action_of(item)))
        elif marked:
            rows.append(_row(id=item["id"], name=item.get("name"), group=group, action=dep.action_of(item),
                             state="succeeded", signal=SIGNAL_NONE,
                             error="no journal: deployed by an earlier agent or marked by heat-config-rebuild-deployed"))
        elif group not in dep.OAC_GROUPS:
            rows.append(_row(id=item["id"], name=item.get("name"), group=group, action=dep.action_of(item),
                             state="pending", signal=SIGNAL_NONE))
    rows += _journal_rows(journal, running, seen)
    for row in rows:
        if row["error"]:
            row["error"] = redact(row["error"])
    return rows, problem


def finished(rows: List[Dict[str, Any]]) -> bool:
    return all(r["state"] in ("succeeded", "failed") and r["signal"] != SIGNAL_PENDING for r in rows)


def render(rows: List[Dict[str, Any]], out: TextIO, as_json: bool) -> None:
    if as_json:
        json.dump({"deployments": rows}, out, indent=2)
        out.write("\n")
        return
    if not rows:
        out.write("no deployments\n")
        return
    table = [["ID", "NAME", "GROUP", "ACTION", "STATE", "EXIT", "DURATION", "SIGNAL", "ERROR"]]
    for r in rows:
        table.append([
            str(r["id"]), str(r["name"] or ""), str(r["group"] or ""), str(r["action"] or ""), r["state"],
            "" if r["status_code"] is None else str(r["status_code"]),
            "" if r["duration_s"] is None else "%.1fs" % r["duration_s"], r["signal"], r["error"] or "",
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] + "\n")


def main(config_file: str, deployed_dir: str, out: TextIO, err: TextIO, *, as_json: bool = False,
         wait: bool = False, timeout: Optional[float] = None, poll_s: float = 0.5) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    note = journal_problem(deployed_dir)
    if note:
        err.write("heat-config status: %s\n" % note)
    while True:
        rows, problem = collect(config_file, deployed_dir)
        if problem:  # one line, no table of nothing (issue 15 item 12)
            err.write("heat-config status: %s\n" % problem)
            return EXIT_FAILED
        if not wait or finished(rows):
            break
        if deadline is not None and time.monotonic() >= deadline:
            render(rows, out, as_json)
            err.write("heat-config status: timed out after %s seconds waiting for deployments\n" % timeout)
            return EXIT_TIMEOUT
        time.sleep(poll_s)
    render(rows, out, as_json)
    if wait:
        return EXIT_FAILED if any(r["state"] == "failed" for r in rows) else EXIT_OK
    return EXIT_OK

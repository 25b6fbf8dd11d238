"""``heat-config status``: what happened to each deployment, read from the journal (SPEC §12.8).

It runs nothing and changes nothing: it reads the deployments file and the
journal, and tells "running" from "interrupted" by whether a dispatcher holds
the journal lock.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, NamedTuple, Optional, TextIO

from agent_common import deployment_contract as contract
from agent_common.deployment_contract import register_input_secrets
from agent_common.logs import redact
from agent_common.metrics import Family
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

FIELDS = ("id", "name", "group", "action", "state", "status_code", "duration_s", "signal", "error",
          "started_at", "finished_at")
#: Lines of deploy_stdout and deploy_stderr that ``status ID`` shows (the whole result is in its file).
TAIL_LINES = 20
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
                status_code=record.status_code, duration_s=record.duration_s, signal=record.signal, error=error,
                started_at=iso(record.started_at), finished_at=iso(record.finished_at))


def iso(stamp: Optional[float]) -> Optional[str]:
    """A journal time as ISO 8601 UTC (SPEC §12.14), None kept."""
    return None if stamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


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


class Snapshot(NamedTuple):
    """What ``status`` read: the rows, a problem with the deployments file, and whether that file exists
    (``--wait`` waits for it on a first boot, SPEC §12.14)."""

    rows: List[Dict[str, Any]]
    problem: Optional[str]
    missing: bool


def collect(config_file: str, deployed_dir: str) -> Snapshot:
    """The rows for the current deployments plus any with a signal still pending, and a file problem if any."""
    journal = Journal(deployed_dir)
    running = journal.dispatcher_running()
    problem = None
    try:
        found = contract.read_deployments(config_file)
    except contract.BadDeploymentsFile as exc:
        found, problem = [], str(exc)
    items = found or []
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
    return Snapshot(rows, problem, found is None)


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


def _tail(text: Any) -> Optional[str]:
    """The last TAIL_LINES lines of a result stream, redacted (SPEC §12.10); None when there is none."""
    if not isinstance(text, str):
        return None
    return redact("".join(text.splitlines(keepends=True)[-TAIL_LINES:]))


def detail(row: Dict[str, Any], deployed_dir: str) -> Dict[str, Any]:
    """One deployment's whole record (SPEC §12.14): its status row, its times, each signal attempt,
    the file holding its full result and the tails of its output."""
    try:
        record = Journal(deployed_dir).read(row["id"])
    except CorruptRecord:
        record = None  # the row already says the record is unusable
    result_file = os.path.join(deployed_dir, "%s.notify.json" % row["id"])
    data = record.signal_data if record is not None else None
    if not isinstance(data, dict):
        data = dep.load_file(result_file)
    attempts = record.signal_log if record is not None else []
    return dict(
        row,
        received_at=iso(record.received_at) if record is not None else None,
        signalled_at=iso(record.signalled_at) if record is not None else None,
        signal_attempts=[{"at": iso(a["at"]), "result": a["result"], "error": redact(a.get("error") or "")}
                         for a in attempts],
        result_file=result_file if os.path.isfile(result_file) else None,
        deploy_stdout=_tail(data.get("deploy_stdout")),
        deploy_stderr=_tail(data.get("deploy_stderr")),
    )


DETAIL_FIELDS = ("id", "name", "group", "action", "state", "status_code", "received_at", "started_at",
                 "finished_at", "duration_s", "signal", "signalled_at", "error", "result_file")


def render_detail(record: Dict[str, Any], out: TextIO, as_json: bool) -> None:
    if as_json:
        json.dump(record, out, indent=2)
        out.write("\n")
        return
    for name in DETAIL_FIELDS:
        value = record[name]
        out.write("%-14s%s\n" % (name + ":", "" if value is None else value))
    out.write("signal attempts:%s\n" % ("" if record["signal_attempts"] else " none"))
    for attempt in record["signal_attempts"]:
        out.write("  %s  %s%s\n" % (attempt["at"], attempt["result"],
                                    "  " + attempt["error"] if attempt["error"] else ""))
    for stream in ("deploy_stdout", "deploy_stderr"):
        text = record[stream]
        out.write("%s (last %d lines):%s\n" % (stream, TAIL_LINES, "" if text else " none"))
        for line in (text or "").splitlines():
            out.write("  | %s\n" % line)


def main(config_file: str, deployed_dir: str, out: TextIO, err: TextIO, *, dep_id: Optional[str] = None,
         as_json: bool = False, wait: bool = False, timeout: Optional[float] = None, poll_s: float = 0.5) -> int:
    """``status`` (every deployment) or ``status ID`` (one, whole); with ``wait``, once it is all done."""
    deadline = None if timeout is None else time.monotonic() + timeout
    note = journal_problem(deployed_dir)
    if note:
        err.write("heat-config status: %s\n" % note)
    while True:
        snap = collect(config_file, deployed_dir)
        if snap.problem:  # one line, no table of nothing (issue 15 item 12)
            err.write("heat-config status: %s\n" % snap.problem)
            return EXIT_FAILED
        rows = snap.rows if dep_id is None else [r for r in snap.rows if r["id"] == dep_id]
        if dep_id is not None and not rows and not wait:
            err.write("heat-config status: no deployment %s in %s or the journal\n" % (dep_id, config_file))
            return EXIT_FAILED
        if not wait or (not snap.missing and finished(rows) and (rows or dep_id is None)):
            break
        if deadline is not None and time.monotonic() >= deadline:
            if snap.missing:
                err.write("heat-config status: timed out after %s seconds waiting for %s to appear\n"
                          % (timeout, config_file))
                return EXIT_TIMEOUT
            if dep_id is None or rows:
                show(rows, dep_id, deployed_dir, out, as_json)
            err.write("heat-config status: timed out after %s seconds waiting for deployments\n" % timeout)
            return EXIT_TIMEOUT
        time.sleep(poll_s)
    show(rows, dep_id, deployed_dir, out, as_json)
    if wait:
        return EXIT_FAILED if any(r["state"] == "failed" for r in rows) else EXIT_OK
    return EXIT_OK


def show(rows: List[Dict[str, Any]], dep_id: Optional[str], deployed_dir: str, out: TextIO, as_json: bool) -> None:
    if dep_id is None:
        render(rows, out, as_json)
    else:
        render_detail(detail(rows[0], deployed_dir), out, as_json)


STATES = ("pending", "running", "succeeded", "failed", "interrupted")


def metric_families(config_file: str, deployed_dir: str, signal_attempts: Dict[str, int]) -> List[Family]:
    """heat-config's metrics (SPEC §12.15), from the same state ``status`` shows: deployments by state,
    each current deployment's last duration and exit status, signals pending, and ``signal_attempts``
    (totals by result). Labels are ids, names, groups and states only, never an input's value."""
    rows = collect(config_file, deployed_dir).rows
    by_state = Family("deployments", "gauge", "Deployments in the deployments file (and any with a signal "
                                              "still pending), by state")
    for state in STATES:
        by_state.add(sum(1 for r in rows if r["state"] == state), state=state)
    duration = Family("deployment_duration_seconds", "gauge", "How long each current deployment's hook ran")
    status_code = Family("deployment_status_code", "gauge", "Each current deployment's deploy_status_code")
    for r in rows:
        labels = {"id": str(r["id"]), "name": str(r["name"] or ""), "group": str(r["group"] or "")}
        if isinstance(r["duration_s"], (int, float)):
            duration.add(r["duration_s"], **labels)
        if type(r["status_code"]) is int:
            status_code.add(r["status_code"], **labels)
    pending = Family("signals_pending", "gauge", "Signals not yet accepted by Heat, to be retried")
    pending.add(sum(1 for r in rows if r["signal"] == SIGNAL_PENDING))
    attempts = Family("signal_attempts_total", "counter",
                      "Signal delivery attempts by result: sent, pending (to be retried), refused (for good)")
    for result, count in sorted(signal_attempts.items()):
        attempts.add(count, result=result)
    return [by_state, duration, status_code, pending, attempts]

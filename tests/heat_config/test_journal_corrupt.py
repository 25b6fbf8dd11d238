"""A damaged journal is set aside and reported, never a reason to stop (issue 12 defect 12, SPEC §12.1, §12.8).

The journal is ours, but a damaged disk happens: an entry that is not a record
(JSON of the wrong shape, not JSON, not UTF-8, not a regular file) is moved,
unchanged, to ``journal/corrupt/<time>-<pid>/``, one warning names it, and
``status`` reports it; a journal path that is not a directory is moved aside and
a new journal started.  Deployments that are marked deployed are still not run
again, and the other deployments run as usual.
"""
from __future__ import annotations

import json
import os
import stat

import pytest

from tests.support.deployments import cfn_inputs, dep_id, deployment
from tests.support.dispatcher import deployed, journal, write_deployments

RAN = "#!/bin/sh\necho ran >> %s\n"

GOOD_FIELDS = {"name": "00_deployment", "group": "script", "step": "finished", "signal": "pending",
               "transport": "CFN_SIGNAL", "attempts": 1, "signal_data": {"deploy_status_code": 0}}

CORRUPT = {
    "list": b"[1, 2]",
    "string": b'"finished"',
    "null": b"null",
    "number": b"5",
    "not-json": b"{half a record",
    "not-utf8": b'{"id": "\xff\xfe"}',
    "empty": b"",
    "too-deep": b"[" * 100000 + b"]" * 100000,
    "step-type": json.dumps(dict(GOOD_FIELDS, step=5)).encode(),
    "unknown-step": json.dumps(dict(GOOD_FIELDS, step="exploded")).encode(),
    "attempts-type": json.dumps(dict(GOOD_FIELDS, attempts="x")).encode(),
    "next-try-type": json.dumps(dict(GOOD_FIELDS, next_try_at="soon")).encode(),
    "next-try-nan": json.dumps(dict(GOOD_FIELDS, next_try_at=float("nan"))).encode(),
    "signal-data-list": json.dumps(dict(GOOD_FIELDS, signal_data=[1])).encode(),
    "error-type": json.dumps(dict(GOOD_FIELDS, error={"a": 1})).encode(),
    "other-id": json.dumps(dict(GOOD_FIELDS, id="someone-else")).encode(),
}


def corrupt_entry(sandbox, dep, content, flagged=True):
    """A deployment marked deployed whose journal record holds ``content``; its path."""
    deployed(sandbox, dep["id"] + ".json").write_text(json.dumps(dep))
    deployed(sandbox, "journal").mkdir(exist_ok=True)
    path = deployed(sandbox, "journal", dep["id"] + ".json")
    path.write_bytes(content)
    if flagged:
        deployed(sandbox, "journal", dep["id"] + ".open").write_text("")
    return path


def set_aside(sandbox, dep_id_):
    """Every set-aside copy of this deployment's record."""
    root = deployed(sandbox, "journal", "corrupt")
    return sorted(p for p in root.glob("*/%s.json" % dep_id_)) if root.exists() else []


def status_rows(run_tool):
    result = run_tool("heat-config", ["status", "--json"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    table = run_tool("heat-config", ["status"])
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    return {r["id"]: r for r in json.loads(result.stdout)["deployments"]}


@pytest.mark.parametrize("flagged", [True, False], ids=["unsettled", "settled"])
@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_record_is_set_aside_reported_and_the_run_goes_on(run_tool, hc, cloud, case, flagged):
    bad = deployment(0, signal=cfn_inputs(cloud))
    good_runs = hc.path("good.runs")
    good = deployment(1, config=RAN % good_runs, signal=cfn_inputs(cloud, "deploy_1"))
    # unflagged: a deployment that left the metadata, whose record the cleanup reads
    write_deployments(hc, [bad, good] if flagged else [good])
    path = corrupt_entry(hc, bad, CORRUPT[case], flagged)

    before = status_rows(run_tool)  # status changes nothing: the entry is reported where it is
    if flagged:
        assert before[bad["id"]]["state"] == "failed" and "journal record" in before[bad["id"]]["error"]
        assert str(path) in before[bad["id"]]["error"]
    assert path.read_bytes() == CORRUPT[case]

    result = run_tool("heat-config")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if str(path) in line and "[WARNING]" in line]
    assert len(warnings) == 1, result.stderr
    (moved,) = set_aside(hc, bad["id"])
    assert str(moved) in warnings[0]
    assert moved.read_bytes() == CORRUPT[case]  # nothing lost
    assert stat.S_IMODE(os.stat(moved).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(moved.parent).st_mode) == 0o700
    assert not path.exists() and not deployed(hc, "journal", bad["id"] + ".open").exists()
    assert good_runs.read_text() == "ran\n"
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_1"]  # the marked one never reruns

    if flagged:
        row = status_rows(run_tool)[bad["id"]]
        assert row["state"] == "failed" and str(moved) in row["error"] and "corrupt" in row["error"]
        assert run_tool("heat-config", ["status", "--wait", "--timeout", "5"]).returncode == 1
    second = run_tool("heat-config")
    assert second.returncode == 0 and "unusable" not in second.stderr  # reported once, not every run
    assert len(set_aside(hc, bad["id"])) == 1


def test_entry_that_is_not_a_regular_file_is_set_aside_without_blocking(run_tool, hc, cloud):
    """A FIFO named like a record would block a plain open() for ever; a directory would raise."""
    fifo_dep, dir_dep = deployment(0), deployment(1)
    write_deployments(hc, [fifo_dep, dir_dep, deployment(2)])
    for dep in (fifo_dep, dir_dep):
        corrupt_entry(hc, dep, b"")
    os.unlink(deployed(hc, "journal", fifo_dep["id"] + ".json"))
    os.mkfifo(deployed(hc, "journal", fifo_dep["id"] + ".json"), 0o600)
    os.unlink(deployed(hc, "journal", dir_dep["id"] + ".json"))
    os.mkdir(deployed(hc, "journal", dir_dep["id"] + ".json"), 0o700)

    rows = status_rows(run_tool)
    assert "not a regular file" in rows[fifo_dep["id"]]["error"]
    result = run_tool("heat-config", timeout=30)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert len(set_aside(hc, fifo_dep["id"])) == 1 and len(set_aside(hc, dir_dep["id"])) == 1
    assert journal(hc, dep_id(2))["step"] == "finished"


def test_journal_path_that_is_a_file_is_moved_aside_and_a_new_journal_started(run_tool, hc, cloud):
    """Decision: the dispatcher keeps working. The journal is ours and rebuilt as deployments run; markers
    still keep deployed ones from running twice; the file is kept beside it for whoever investigates."""
    done = deployment(0, signal=cfn_inputs(cloud))
    new_runs = hc.path("new.runs")
    write_deployments(hc, [done, deployment(1, config=RAN % new_runs, signal=cfn_inputs(cloud, "deploy_1"))])
    deployed(hc, done["id"] + ".json").write_text(json.dumps(done))
    blocker = deployed(hc, "journal")
    blocker.write_bytes(b"not a directory")

    status = run_tool("heat-config", ["status"])
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "%s is not a directory" % blocker in status.stderr

    result = run_tool("heat-config")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "[ERROR]" in line and str(blocker) in line]
    assert len(errors) == 1, result.stderr
    (moved,) = [p for p in deployed(hc).iterdir() if p.name.startswith("journal.corrupt-")]
    assert str(moved) in errors[0]
    assert moved.read_bytes() == b"not a directory" and stat.S_IMODE(os.stat(moved).st_mode) == 0o600
    assert blocker.is_dir() and stat.S_IMODE(os.stat(blocker).st_mode) == 0o700
    assert new_runs.read_text() == "ran\n"
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_1"]
    assert "not a directory" not in run_tool("heat-config", ["status"]).stderr


def test_signals_only_run_with_a_journal_path_that_is_a_file(run_tool, hc):
    """What the running agent runs between polls: the same repair, no traceback."""
    deployed(hc, "journal").write_bytes(b"x")
    result = run_tool("heat-config", ["dispatch", "--signals-only"])
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert deployed(hc, "journal").is_dir()

"""A deployment whose signal cannot be sent must not stop the others (issue 12 defect 7, SPEC §12.4, §12.10).

An unusable signal URL is refused when the deployment arrives: its hook never
runs, nothing is sent anywhere, and ``status`` shows the refusal naming the
input.  A pending outbox record that cannot be sent is settled or left pending
on its own, never stopping the run.
"""
from __future__ import annotations

import json

import pytest

from tests.support.deployments import STACK_ID, cfn_inputs, dep_id, deployment, keystone_inputs
from tests.support.dispatcher import deployed, journal, write_deployments

RAN = "#!/bin/sh\necho ran >> %s\n"


def status_rows(run_tool):
    result = run_tool("heat-config", ["status", "--json"])
    assert result.returncode == 0, result.stderr
    return {r["id"]: r for r in json.loads(result.stdout)["deployments"]}


def bad_url_inputs(cloud, sandbox, case):
    """(signal inputs with one unusable URL, the input named in the refusal)."""
    target = sandbox.path("opened-by-signal")
    urls = {"not-a-url": "not a url", "empty": "", "bad-ipv6": "http://[::1",
            "file": "file://%s?temp_url_sig=planted-temp-url-sig-3b8d" % target,
            "no-host": "https:///path?Signature=planted-temp-url-sig-3b8d", "ftp": "ftp://127.0.0.1/x"}
    if case in urls:
        inputs = cfn_inputs(cloud)
        inputs[1]["value"] = urls[case]
        return inputs, "deploy_signal_id"
    if case == "temp-url":
        return [{"name": "deploy_signal_transport", "type": "String", "value": "TEMP_URL_SIGNAL"},
                {"name": "deploy_signal_id", "type": "String", "value": "file://%s" % target},
                {"name": "deploy_signal_verb", "type": "String", "value": "PUT"}], "deploy_signal_id"
    transport = "HEAT_SIGNAL" if case == "heat" else "ZAQAR_SIGNAL"
    inputs = keystone_inputs(cloud, transport)
    for item in inputs:
        if item["name"] == "deploy_auth_url":
            item["value"] = "file://%s" % target
    return inputs, "deploy_auth_url"


@pytest.mark.parametrize("case", ["not-a-url", "empty", "bad-ipv6", "file", "no-host", "ftp", "temp-url", "heat",
                                  "zaqar"])
def test_unusable_signal_url_is_refused_on_arrival_and_the_next_deployment_runs(run_tool, hc, cloud, case):
    inputs, named = bad_url_inputs(cloud, hc, case)
    bad_runs, good_runs = hc.path("bad.runs"), hc.path("good.runs")
    write_deployments(hc, [deployment(0, config=RAN % bad_runs, signal=inputs),
                           deployment(1, config=RAN % good_runs, signal=cfn_inputs(cloud, "deploy_1"))])
    first, second = run_tool("heat-config"), run_tool("heat-config")
    for result in (first, second):
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert "planted-temp-url-sig" not in result.stderr
    assert "deployment %s refused, not run: input %s is" % (dep_id(0), named) in first.stderr
    assert not bad_runs.exists()  # refused before its hook ran
    assert good_runs.read_text() == "ran\n"
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_1"]  # signalled once
    assert cloud.heat.signals == [] and cloud.keystone.auth_count == 0
    assert not hc.path("opened-by-signal").exists()

    record = journal(hc, dep_id(0))
    assert record["signal"] == "refused" and named in record["signal_error"]
    assert not deployed(hc, "journal", dep_id(0) + ".open").exists()  # settled: no run reads it again
    rows = status_rows(run_tool)
    assert rows[dep_id(0)]["signal"] == "refused" and rows[dep_id(0)]["state"] == "failed"
    assert named in rows[dep_id(0)]["error"] and "planted-temp-url-sig" not in rows[dep_id(0)]["error"]
    assert rows[dep_id(1)]["state"] == "succeeded" and rows[dep_id(1)]["signal"] == "sent"
    assert run_tool("heat-config", ["status", "--wait", "--timeout", "5"]).returncode == 1  # failed, not waiting


def test_pending_signal_with_an_unusable_url_left_by_an_older_agent_is_refused_and_the_rest_goes_on(
        run_tool, hc, cloud):
    """The outbox of an earlier version may hold such a record: it is settled, not retried for ever."""
    bad = deployment(0, signal=bad_url_inputs(cloud, hc, "not-a-url")[0])
    good_runs = hc.path("good.runs")
    write_deployments(hc, [bad, deployment(1, config=RAN % good_runs, signal=cfn_inputs(cloud, "deploy_1"))])
    deployed(hc, bad["id"] + ".json").write_text(json.dumps(bad))
    deployed(hc, "journal").mkdir()
    data = {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    deployed(hc, "journal", bad["id"] + ".json").write_text(json.dumps(
        {"id": bad["id"], "name": bad["name"], "group": "script", "step": "finished", "signal": "pending",
         "transport": "CFN_SIGNAL", "attempts": 1, "signal_data": data}))
    deployed(hc, "journal", bad["id"] + ".open").write_text("")

    result = run_tool("heat-config")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "Signal for %s refused for good: input deploy_signal_id" % bad["id"] in result.stderr
    assert good_runs.read_text() == "ran\n"
    assert journal(hc, bad["id"])["signal"] == "refused"
    run_tool("heat-config")
    assert [s.arn.rsplit("/", 1)[-1] for s in cloud.cfn.signals] == ["deploy_1"]
    assert journal(hc, bad["id"])["attempts"] == 2  # refused once, never tried again


def test_valid_signal_urls_are_not_refused(run_tool, hc, cloud):
    """An IPv6 literal, a port, upper-case scheme: still URLs Heat could have made."""
    inputs = cfn_inputs(cloud)
    inputs[1]["value"] = inputs[1]["value"].replace("http://", "HTTP://", 1)
    write_deployments(hc, [deployment(0, signal=inputs)])
    assert run_tool("heat-config").returncode == 0
    assert len(cloud.cfn.signals) == 1
    assert STACK_ID in cloud.cfn.signals[0].arn

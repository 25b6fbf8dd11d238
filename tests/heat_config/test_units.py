"""Small pure rules checked directly: signal trimming, coercion, id/group validation, transport choice."""
from __future__ import annotations

import json

import pytest

from agent_common import deployment_contract as contract
from heat_config import deployment as dep
from heat_config.signals import MAX_SIGNAL_CHARS, fit, route_name


def test_fit_leaves_small_signals_byte_identical():
    data = {"deploy_stdout": "caf\u00e9", "deploy_status_code": 0}
    assert fit(data) == json.dumps(data, ensure_ascii=True)


def test_fit_cuts_any_large_value_so_the_signal_always_fits():
    """SPEC §11.8: trimming stdout/stderr alone may not be enough; a huge output is cut too."""
    data = {"deploy_stdout": "short", "deploy_stderr": "", "deploy_status_code": 0,
            "result": "\u00e9" * 400000 + "TAIL"}  # 6 characters each once escaped
    body = fit(data)
    assert len(body) <= MAX_SIGNAL_CHARS
    parsed = json.loads(body)
    assert parsed["result"].endswith("TAIL") and "characters cut" in parsed["result"]
    assert parsed["deploy_stdout"] == "short"


@pytest.mark.parametrize("value,expected", [(True, "true"), (5, "5"), (None, ""), ({"a": 1}, '{"a": 1}'),
                                            ([1, "x"], '[1, "x"]'), ("as is", "as is")])
def test_string_coercion_is_json_text(value, expected):
    d = {"inputs": [{"name": "i", "type": "String", "value": value}]}
    dep.coerce_inputs(d)
    assert d["inputs"][0]["value"] == expected


@pytest.mark.parametrize("name,ok", [("5b0c2f0e-7d3a", True), ("Heat::Ungrouped", True), ("a.b_c-d", True),
                                     ("..", False), ("a/../b", False), ("/abs", False), ("a\\b", False),
                                     ("", False), (None, False), ("caf\u00e9", False), ("a b", False)])
def test_name_rules(name, ok):
    assert (contract.name_problem(name) is None) is ok


@pytest.mark.parametrize("names,expected", [
    ({"deploy_signal_id": "u", "deploy_signal_verb": "PUT"}, "TEMP_URL_SIGNAL"),
    ({"deploy_signal_id": "u"}, "CFN_SIGNAL"),
    ({"deploy_auth_url": "a", "deploy_queue_id": "q"}, "ZAQAR_SIGNAL"),
    ({"deploy_auth_url": "a"}, "HEAT_SIGNAL"),
    ({"deploy_signal_id": "u", "deploy_queue_id": "q"}, "CFN_SIGNAL+ZAQAR_SIGNAL"),
    ({"deploy_signal_transport": "HEAT_SIGNAL"}, "NO_SIGNAL"),  # chosen from inputs, not from the name (§7.1)
])
def test_transport_choice_follows_the_original(names, expected):
    assert route_name(names) == expected


def test_heat_failure_rule():
    """SPEC §7.8: what Heat counts as failed."""
    outputs = [{"name": "err", "error_output": True}, {"name": "ok"}]
    for code in (1, "00", -1, "x"):
        assert dep.signal_failed(outputs, {"deploy_status_code": code})
    for code in (0, "0", None, ""):
        assert not dep.signal_failed(outputs, {"deploy_status_code": code})
    assert dep.signal_failed(outputs, {"deploy_status_code": 0, "err": ""})
    assert not dep.signal_failed(outputs, {"ok": "x"})


def test_fit_drops_huge_non_string_outputs_but_keeps_the_deploy_keys():
    data = {"deploy_stdout": "o" * 100 + "END", "deploy_stderr": "err\n", "deploy_status_code": 2,
            "listing": list(range(300000))}
    parsed = json.loads(fit(data))
    assert "listing" not in parsed
    assert parsed["deploy_stdout"] == "o" * 100 + "END" and parsed["deploy_status_code"] == 2
    assert parsed["deploy_stderr"].startswith("err\n") and "outputs dropped" in parsed["deploy_stderr"]


def test_one_outbox_record_that_raises_does_not_stop_the_others(tmp_path):
    """Issue 12 defect 7: an error of ours while retrying one record is recorded on it, and the loop goes on.

    Every input the dispatcher can be given is refused before it reaches the outbox
    (tests/heat_config/test_outbox.py), so the error here comes from a sender that
    fails as a bug would.
    """
    from heat_config.journal import FINISHED, Journal, JournalRecord
    from heat_config.signals import SIGNAL_PENDING, SIGNAL_SENT, Attempt, Outbox

    class Sender:
        def __init__(self):
            self.delivered = []

        def deliver(self, deployment_file, inputs, data):
            if deployment_file.endswith("bad.json"):
                raise KeyError("deploy_signal_id")
            self.delivered.append(deployment_file)
            return Attempt(SIGNAL_SENT)

    journal = Journal(str(tmp_path))
    records = [JournalRecord(id=i, step=FINISHED, signal=SIGNAL_PENDING, transport="CFN_SIGNAL") for i in ("bad", "good")]
    for record in records:
        journal.save(record)
    sender = Sender()
    outbox = Outbox(journal, sender, budget_s=0, sleep=lambda s: None)
    outbox.retry_all()
    assert sender.delivered == [str(tmp_path / "good.json")]
    bad, good = journal.load("bad"), journal.load("good")
    assert good.signal == "sent"
    assert bad.signal == "pending" and bad.attempts == 1
    assert bad.signal_error == "heat-config could not send it: KeyError: 'deploy_signal_id'"
    assert list(outbox.pending) == ["bad"]  # retried by the next run, never dropped

"""Fuzz the dispatcher side with generated deployments documents (SPEC §6, §12.7, §12.8, §12.10).

Each example is one deployments file holding several generated deployments, run through the real
``heat-config`` twice (the second run retries the outbox and must not be stopped by one bad entry),
then ``heat-config status`` and ``status --json``, then ``heat-config-hook`` and ``heat-config-notify``
on the first deployment. Every command must end with a result or one clear line: no traceback,
no hang, no planted secret in its output, no secret in a file outside the 0600 state.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.faults.conftest import FuzzTarget, scan_tree_for_secrets
from tests.faults.strategies import PLANTED_SECRETS, deployments_documents, json_values
from tests.servers.base import LoopbackServer, Response

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def signal_server() -> Iterator[LoopbackServer]:
    """Accepts every signal (POST or PUT) on 127.0.0.1."""
    server = LoopbackServer()
    for method in ("POST", "PUT"):
        server.add_route(method, r"/.*", lambda request, match: Response(200, b""))
    server.start()
    yield server
    server.stop()


def dispatcher_env(box: Any) -> dict:
    return {"HEAT_SCRIPT_WORKING": str(box.path("lib", "heat-config-script")),
            "HEAT_SCRIPT_OUTPUTS": str(box.path("run", "heat-config-script")),
            "HEAT_CONFIG_SIGNAL_RETRY_S": "0", "HEAT_CONFIG_SIGNAL_TIMEOUT_S": "2",
            "HEAT_CONFIG_HOOK_TIMEOUT": "10"}


def private_state(box: Any):
    """The 0600 state, the deployments file, and the copy of one deployment this test hands to the notifier."""
    deployed = box.path("deployed")
    files = (box.path("run", "heat-config"), box.path("run", "one-deployment.json"))
    return lambda path: path in files or deployed in path.parents


@given(document=deployments_documents("http://127.0.0.1:0"), notify_data=json_values)
def test_deployments_documents(fuzz_base: Path, signal_server: LoopbackServer, document: str, notify_data: Any):
    target = FuzzTarget("deployments", fuzz_base)
    document = document.replace("http://127.0.0.1:0", signal_server.url)
    box = target.sandbox()
    box.write("run/heat-config", document)
    env = dispatcher_env(box)
    for _ in range(2):
        target.run(box, "heat-config", env=env, timeout=60)
    target.run(box, "heat-config", ["status"], env=env)
    listed = target.run(box, "heat-config", ["status", "--json"], env=env)
    if listed.returncode == 0:
        assert isinstance(json.loads(listed.stdout)["deployments"], list)
    first = _first_deployment(document)
    if first is not None:
        group = first.get("group") if isinstance(first.get("group"), str) and first.get("group") else "script"
        target.run(box, "heat-config-hook", [group], input=json.dumps(first), env=env)
        dep_file = box.write("run/one-deployment.json", json.dumps(first), 0o600)
        target.run(box, "heat-config-notify", [str(dep_file)], input=json.dumps(notify_data), env=env)
    leaks = scan_tree_for_secrets(box.root, PLANTED_SECRETS, private_state(box))
    assert not leaks, leaks


def _first_deployment(document: str) -> Any:
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        return parsed[0]
    return None


@given(ids=st.lists(st.sampled_from(["x", "x.notify", "x" * 251, "y" * 260, ".", "a.json", "a"]), min_size=2,
                    max_size=4, unique=True))
def test_ids_that_collide_or_cannot_name_a_file_are_each_accounted_for(fuzz_base: Path, ids: list):
    """Issue 12 §10: every accepted id runs once and is reported; a refused one is listed, never lost."""
    target = FuzzTarget("deployment ids", fuzz_base)
    box = target.sandbox()
    counter = box.path("runs.log")
    deps = [{"id": i, "name": "n%d" % n, "group": "script", "options": {}, "outputs": [],
             "config": "#!/bin/sh\necho %d >> %s\n" % (n, counter),
             "inputs": [{"name": "deploy_signal_transport", "type": "String", "value": "NO_SIGNAL"}]}
            for n, i in enumerate(ids)]
    box.write("run/heat-config", json.dumps(deps))
    env = dispatcher_env(box)
    for _ in range(2):
        target.run(box, "heat-config", env=env, timeout=60)
    runs = counter.read_text().split() if counter.exists() else []
    assert len(runs) == len(set(runs)), "a hook ran twice: %s" % runs
    listed = target.run(box, "heat-config", ["status", "--json"], env=env)
    assert listed.returncode == 0, listed.stderr
    states = {d["id"]: d["state"] for d in json.loads(listed.stdout)["deployments"]}
    for n, i in enumerate(ids):
        assert i in states, "deployment %r is missing from status: %s" % (i, states)
        if str(n) not in runs:
            assert states[i] != "succeeded", "%r never ran but status says succeeded" % i

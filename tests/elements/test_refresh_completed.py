"""post-configure.d/99-refresh-completed of the os-refresh-config element (SPEC §7.10), against a loopback server."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

from tests.elements.dib import ELEMENTS
from tests.servers.base import LoopbackServer, Request, Response
from tests.support.sandbox import Sandbox, assert_no_planted_secret

SCRIPT = ELEMENTS / "os-refresh-config" / "os-refresh-config" / "post-configure.d" / "99-refresh-completed"
SIG = "Signature=planted-temp-url-sig-3b8d"


@pytest.fixture
def server():
    srv = LoopbackServer()
    srv.status_for: Dict[str, int] = {}  # type: ignore[attr-defined]

    def handler(request: Request, match) -> Response:
        return Response(srv.status_for.get(request.path, 200), b"")  # type: ignore[attr-defined]

    for method in ("POST", "PUT"):
        srv.add_route(method, "/.*", handler)
    srv.start()
    yield srv
    srv.stop()


def _run(sandbox: Sandbox, metadata: dict) -> subprocess.CompletedProcess:
    md = sandbox.write("cache/md.json", json.dumps(metadata))
    env = dict(sandbox.env, OS_CONFIG_FILES=str(md), OS_APPLY_CONFIG_DEPLOYED_DIR=str(sandbox.path("oac-deployed")))
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)


def _deployment(server: LoopbackServer, id_: str, group: str = "os-apply-config") -> dict:
    return {"id": id_, "group": group, "name": "cfg-" + id_, "config": {"a": 1}, "inputs": [
        {"name": "deploy_signal_id", "value": "%s/v1/signal/%s?%s" % (server.url, id_, SIG)},
        {"name": "deploy_signal_verb", "value": "POST"}]}


def _bodies(server: LoopbackServer) -> List[tuple]:
    return [(r.method, r.path, r.json()) for r in server.requests]


def test_nothing_is_signalled_without_an_instance_id(sandbox: Sandbox, server: LoopbackServer) -> None:
    result = _run(sandbox, {"deployments": [_deployment(server, "d1")]})
    assert result.returncode == 0, result.stderr
    assert server.requests == []


def test_os_apply_config_deployments_are_signalled_once(sandbox: Sandbox, server: LoopbackServer) -> None:
    metadata = {"instance-id": "i-0001", "deployments": [
        _deployment(server, "d1"), _deployment(server, "d2", group="script"),
        {"id": "d3", "group": "os-apply-config", "inputs": []}]}
    first = _run(sandbox, metadata)
    assert first.returncode == 0, first.stderr
    assert _bodies(server) == [("POST", "/v1/signal/d1", {
        "deploy_stdout": "os-apply-config deployment d1 completed", "deploy_status_code": "0"})]
    assert server.requests[0].raw_path.endswith(SIG)
    assert sandbox.path("oac-deployed", "d1").exists()
    second = _run(sandbox, metadata)
    assert second.returncode == 0 and "Skipping d1, already deployed" in second.stdout
    assert len(server.requests) == 1
    for text in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert_no_planted_secret(text, "99-refresh-completed output")


def test_legacy_handles_are_signalled_and_failures_fail_the_run(sandbox: Sandbox, server: LoopbackServer) -> None:
    server.status_for["/signal"] = 404  # type: ignore[attr-defined]
    result = _run(sandbox, {"instance-id": "i-0002", "completion-handle": server.url + "/handle?" + SIG,
                            "completion-signal": server.url + "/signal?" + SIG})
    assert result.returncode == 1
    assert "the completion-signal signal failed" in result.stderr
    expected = {"Status": "SUCCESS", "Reason": "Configuration Complete", "UniqueId": "i-0002",
                "Data": "Finished os-refresh-config."}
    assert _bodies(server) == [("PUT", "/handle", expected), ("POST", "/signal", expected)]
    assert_no_planted_secret(result.stderr, "99-refresh-completed stderr")


def test_unsafe_deployment_ids_never_become_paths(sandbox: Sandbox, server: LoopbackServer) -> None:
    result = _run(sandbox, {"instance-id": "i-3", "deployments": [_deployment(server, "../../escape")]})
    assert result.returncode == 0
    assert "refusing unsafe deployment id" in result.stderr
    assert server.requests == [] and not Path(sandbox.root.parent, "escape").exists()


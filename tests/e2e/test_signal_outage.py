"""No lost signal (SPEC §12.2–§12.4): heat-api is down when the hook finishes; the result still reaches Heat.

The server polls metadata over CFN (heat-api-cfn stays up) and signals over the Heat API, which this test
stops by PID before the agent starts and brings back once the signal is known to be pending. The originals
would have written their "deployed" marker and given up, leaving Heat to its timeout (SPEC §7.9, §11.2).
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.e2e import controlplane
from tests.e2e.stacks import deployment_template, outputs_of
from tests.support.vm import BIN_DIR


def signal_states(vm) -> list:
    out = subprocess.run([str(BIN_DIR / "heat-config"), "status", "--json"], env=vm.env, cwd=str(vm.base),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d.get("signal") for d in json.loads(out.stdout)["deployments"]]


def test_signal_is_delivered_after_a_heat_api_outage(deployer, vm, control_plane):
    plane = controlplane.ControlPlane(Path(control_plane["state_dir"]), Path(control_plane["venv"]))
    done = vm.base / "hook-done"
    deployer.create(deployment_template(
        transport="POLL_SERVER_CFN", signal="HEAT_SIGNAL", group="script",
        inputs=[{"name": "DONE"}], input_values={"DONE": str(done)}, outputs=[{"name": "result"}],
        config='#!/bin/sh\nprintf delivered > "$heat_outputs_path.result"\ntouch "$DONE"\n'),
        start_agent=False)
    deployer.collect_secrets()

    assert plane.stop_service("heat-api")
    try:
        vm.start()
        vm.wait_for_file(done, 120)
        deadline = time.monotonic() + 120
        while "pending" not in signal_states(vm):
            assert time.monotonic() < deadline, "the failed signal never showed as pending:\n%s" % vm.log()[-4000:]
            time.sleep(1)
    finally:
        plane.start_service("heat-api", control_plane["ports"]["heat"])

    stack = deployer.wait(timeout=300)
    assert stack["stack_status"] == "CREATE_COMPLETE", deployer.explain(stack)
    assert outputs_of(stack)["out_result"] == "delivered"
    assert signal_states(vm) == ["sent"]
    assert done.exists()

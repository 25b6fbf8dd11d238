"""First boot when the transport is not reachable yet: the agent must keep the configuration Heat gave it.

No control plane needed: Heat's settings point at a port where nothing listens, as when the metadata
service is still starting while the server boots.
"""
from __future__ import annotations

import time

from tests.support.sandbox import PLANTED_SECRETS

UNREACHABLE_HEAT = {
    "collectors": ["heat", "local"],
    "heat": {"auth_url": "http://127.0.0.1:9/v3", "user_id": "0f3c", "password": PLANTED_SECRETS[0],
             "project_id": "9a1b", "stack_id": "web/5f1e0c7e", "resource_name": "server",
             "region_name": "RegionOne"},
}


def test_unreachable_transport_at_first_poll_keeps_the_rendered_config(vm):
    rendered = vm.boot(UNREACHABLE_HEAT)
    assert "[heat]" in rendered
    vm.start()
    started = len(vm.log())
    # Several polls at the 1-2 s cadence, every one of them failing: counted in the agent's log, each
    # one a chance for the agent to run its command on no metadata and render its config from nothing.
    deadline = time.monotonic() + 60
    while vm.log()[started:].count("Source [heat] Unavailable") < 4:
        assert vm.proc.poll() is None, "the agent exited:\n%s" % vm.log()[-4000:]
        assert time.monotonic() < deadline, "fewer than 4 failed heat polls in 60 s:\n%s" % vm.log()[-4000:]
        time.sleep(0.2)

    assert vm.proc.poll() is None, vm.log()[-4000:]
    assert vm.occ_conf.read_text() == rendered, (
        "the agent rewrote its own configuration from no metadata while the transport was down:\n%s"
        % vm.log()[-6000:])
    assert "with collectors heat_local ec2" not in vm.log(), "the agent fell back to its built-in collectors"

"""What an idle os-collect-config carries for life: its resident memory is benchmarked (bench/collect.py).

The modules on these paths keep the start-up tricks of docs/architecture.md's start-up policy; these
tests are what holds them to it.
"""
import json
import subprocess
import sys

#: Modules the idle agent must not import: dataclasses drags in inspect, ast, dis and tokenize (~1.3 MiB
#: resident), typing ~0.5 MiB more.
HEAVY = ("dataclasses", "inspect", "ast", "typing")


def imported(modules: str, watched: tuple) -> list:
    """Which of ``watched`` a fresh interpreter holds after importing ``modules``."""
    code = "import json, sys, %s; print(json.dumps(sorted(m for m in %r if m in sys.modules)))" % (modules, watched)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_idle_agent_path_imports_no_dataclasses_nor_typing():
    assert imported("os_collect_config.cli, os_collect_config.loop, os_collect_config.collectors.request, "
                    "os_collect_config.collectors.ec2, os_collect_config.collectors.local, "
                    "os_collect_config.collectors.heat_local, agent_common.http, agent_common.proc, "
                    "agent_common.paths, urllib.request", HEAVY) == []


def test_keystone_and_cfn_sources_import_no_dataclasses():
    """requests, keystoneauth1 and ElementTree bring typing with them; dataclasses would be ours alone."""
    assert imported("os_collect_config.cli, os_collect_config.loop, os_collect_config.collectors.heat, "
                    "os_collect_config.collectors.zaqar, os_collect_config.collectors.cfn, "
                    "agent_common.keystone, keystoneauth1.session, keystoneauth1.identity.v3",
                    HEAVY[:3]) == []

"""What an idle os-collect-config carries for life: its resident memory is benchmarked (bench/collect.py).

The modules on these paths keep the start-up tricks of docs/architecture.md's start-up policy; these
tests are what holds them to it.
"""
from tests.support.imports import added, modules_after

#: Modules the idle agent must not import: dataclasses drags in inspect, ast, dis and tokenize (~1.3 MiB
#: resident), typing ~0.5 MiB more.
HEAVY = ("dataclasses", "inspect", "ast", "typing")
#: What the keystone and cfn sources' libraries bring by themselves (typing always; inspect too on some Pythons).
LIBRARIES = "keystoneauth1.session, keystoneauth1.identity.v3, requests, xml.etree.ElementTree"


def test_idle_agent_path_imports_no_dataclasses_nor_typing():
    loaded = modules_after("os_collect_config.cli, os_collect_config.loop, os_collect_config.collectors.request, "
                           "os_collect_config.collectors.ec2, os_collect_config.collectors.local, "
                           "os_collect_config.collectors.heat_local, agent_common.http, agent_common.proc, "
                           "agent_common.paths, urllib.request")
    assert added(loaded, modules_after(""), HEAVY) == []


def test_keystone_and_cfn_sources_import_no_dataclasses():
    """requests, keystoneauth1 and ElementTree bring typing with them; dataclasses would be ours alone."""
    loaded = modules_after("os_collect_config.cli, os_collect_config.loop, os_collect_config.collectors.heat, "
                           "os_collect_config.collectors.zaqar, os_collect_config.collectors.cfn, "
                           "agent_common.keystone, " + LIBRARIES)
    assert added(loaded, modules_after(LIBRARIES), HEAVY[:3]) == []

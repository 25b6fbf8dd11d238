"""What an idle os-collect-config carries for life: its resident memory is benchmarked (bench/collect.py)."""
import subprocess
import sys

#: Modules the idle agent must not import: dataclasses drags in inspect, ast, dis and tokenize (~1.3 MiB
#: resident), typing ~0.5 MiB more.
HEAVY = ("dataclasses", "inspect", "ast", "typing")


def test_idle_agent_path_imports_no_dataclasses_nor_typing():
    code = ("import sys, os_collect_config.cli, os_collect_config.loop, os_collect_config.collectors.request, "
            "os_collect_config.collectors.ec2, os_collect_config.collectors.local, "
            "os_collect_config.collectors.heat_local, agent_common.http, agent_common.proc, agent_common.paths, "
            "urllib.request; print(sorted(m for m in %r if m in sys.modules))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

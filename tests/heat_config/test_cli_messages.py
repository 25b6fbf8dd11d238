"""``heat-config`` messages for a mistyped subcommand and an unknown hook group (issue 15 items 9 and 16)."""
from __future__ import annotations

import json

from tests.support.deployments import cfn_inputs, deployment
from tests.support.dispatcher import write_deployments

SUBCOMMANDS = "dispatch, status, run, hook"


def test_a_mistyped_subcommand_is_named_listed_and_corrected(run_tool, hc):
    write_deployments(hc, [deployment(0)])
    result = run_tool("heat-config", ["stauts"])
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("heat-config: unknown subcommand 'stauts'; the subcommands are %s (none: dispatch); "
                             "did you mean 'status'?\n" % SUBCOMMANDS)
    assert not hc.path("lib", "heat-config-script").exists()  # nothing was dispatched
    far = run_tool("heat-config", ["zzzz"])
    assert far.returncode == 2 and "did you mean" not in far.stderr and SUBCOMMANDS in far.stderr


def test_options_alone_still_run_the_dispatcher(run_tool, hc):
    """``heat-config --signals-only`` (what the agent runs between polls) keeps meaning ``dispatch --signals-only``."""
    write_deployments(hc, [deployment(0)])
    result = run_tool("heat-config", ["--signals-only"])
    assert result.returncode == 0, result.stderr
    assert not hc.path("lib", "heat-config-script").exists()  # signals only: no hook ran
    assert run_tool("heat-config").returncode == 0
    assert hc.path("lib", "heat-config-script").exists()


def expected_unknown(group: str, close: str) -> str:
    return "no hook for group %s (did you mean %s?); known groups: " % (group, close)


def test_unknown_group_lists_known_groups_and_suggests_in_log_and_signal(run_tool, hc, cloud):
    hc.write("hooks/my-tool", "#!/bin/sh\necho '{}'\n", 0o755)
    write_deployments(hc, [deployment(0, group="scirpt", signal=cfn_inputs(cloud)),
                           deployment(1, group="my-tol")])
    result = run_tool("heat-config")
    assert result.returncode == 0
    assert expected_unknown("scirpt", "script") in result.stderr
    assert expected_unknown("my-tol", "my-tool") in result.stderr
    (signal,) = cloud.cfn.signals
    stderr = signal.body["deploy_stderr"]
    assert signal.body["deploy_status_code"] != 0 and expected_unknown("scirpt", "script") in stderr
    assert "my-tool" in stderr and "script" in stderr and str(hc.path("hooks")) in stderr


def test_unknown_group_in_run_and_hook_suggests_the_closest(run_tool, hc):
    path = hc.write("s.json", json.dumps({"group": "scirpt", "config": "#!/bin/sh\ntrue\n"}))
    result = run_tool("heat-config", ["run", str(path)])
    assert result.returncode == 1
    assert result.stderr.startswith("heat-config run: %s: %s" % (path, expected_unknown("scirpt", "script")))
    hooked = run_tool("heat-config", ["hook", "pupet"], input="{}")
    assert hooked.returncode == 1 and expected_unknown("pupet", "puppet") in hooked.stderr

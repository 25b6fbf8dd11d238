"""SPEC §12.19: every command answers --version with ``os-config-agents X.Y.Z``; every --help ends with examples."""
from __future__ import annotations

from importlib.metadata import version

import pytest

COMMANDS = ["os-collect-config", "os-refresh-config", "os-apply-config", "os-config-applier", "dib-run-parts",
            "heat-config", "heat-config-notify", "heat-config-hook", "heat-config-rebuild-deployed"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_version(run_tool, command):
    result = run_tool(command, ["--version"], input="")
    assert (result.returncode, result.stdout, result.stderr) == (0, "os-config-agents %s\n" % version(
        "os-config-agents"), "")


@pytest.mark.parametrize("argv", [
    ["os-collect-config"], ["os-refresh-config"], ["os-apply-config"], ["os-config-applier"], ["heat-config"],
    ["heat-config", "dispatch"], ["heat-config", "status"], ["heat-config", "run"], ["heat-config", "hook"],
    ["heat-config-hook"],
])
def test_help_ends_with_an_example_of_the_command(run_tool, argv):
    result = run_tool(argv[0], argv[1:] + ["--help"])
    assert result.returncode == 0, result.stderr
    epilog = result.stdout.rstrip("\n").rsplit("\nexamples:\n", 1)
    assert len(epilog) == 2, result.stdout
    examples = epilog[1].splitlines()
    command = argv[0].replace("os-config-applier", "os-apply-config")
    assert examples and all(line.startswith("  ") and command in line for line in examples), examples
    if len(argv) > 1:  # a subcommand's own examples
        assert all(" ".join(argv) in line for line in examples), examples
    else:
        assert "--version" in result.stdout and "--log-format" in result.stdout


def test_heat_config_takes_the_shared_options_before_its_subcommand(run_tool, hc):
    result = run_tool("heat-config", ["--log-format", "json", "status", "--json"])
    assert result.returncode == 0, result.stderr

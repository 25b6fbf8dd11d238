"""The apply-config hook (SPEC §8.5): it runs this project's real os-apply-config and reports its result."""
from __future__ import annotations

import json
import shlex
import sys

import pytest


def deployment(options=None):
    return {"id": "5b2c5d2e-aaaa-4bbb-8ccc-000000000001", "name": "apply", "group": "apply-config",
            "config": {"ignored": True}, "inputs": [], "outputs": [], "options": options or {}}


def run_hook(run_tool, env, options=None):
    result = run_tool("heat-config-hook", ["apply-config"], input=json.dumps(deployment(options)), env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def oac_env(sandbox):
    """Metadata and a template in the sandbox; os-apply-config renders below ``<sandbox>/out`` (never ``/``)."""
    metadata = sandbox.write("cache/metadata.json", json.dumps({"app": {"port": 8080, "name": "demo"}}))
    out = sandbox.path("out")
    out.mkdir()
    return {
        "OS_CONFIG_FILES": str(metadata),
        "HEAT_APPLY_CONFIG_CMD": "os-apply-config -o %s" % shlex.quote(str(out)),
    }


def test_renders_all_metadata_with_the_real_os_apply_config(run_tool, sandbox, oac_env):
    sandbox.write("templates/etc/app.conf", "name={{app.name}}\nport={{app.port}}\n")
    out = run_hook(run_tool, oac_env)
    assert out["deploy_status_code"] == 0, out["deploy_stderr"]
    assert sandbox.path("out", "etc", "app.conf").read_text() == "name=demo\nport=8080\n"
    assert set(out) == {"deploy_stdout", "deploy_stderr", "deploy_status_code"}


def test_failing_os_apply_config_gives_its_status_and_stderr(run_tool, sandbox, oac_env):
    sandbox.write("templates/etc/broken.conf", "{{#app}}never closed\n")
    out = run_hook(run_tool, oac_env)
    assert out["deploy_status_code"] == 1
    assert "broken.conf" in out["deploy_stderr"]
    assert not sandbox.path("out", "etc", "broken.conf").exists()


def test_missing_command_is_a_failure_with_a_reason(run_tool, sandbox):
    missing = str(sandbox.path("no-such-os-apply-config"))
    out = run_hook(run_tool, {"HEAT_APPLY_CONFIG_CMD": missing})
    assert out["deploy_status_code"] == 127
    assert out["deploy_stderr"] == ("%s cannot be run: not installed (install os-apply-config, or set "
                                    "HEAT_APPLY_CONFIG_CMD)\n" % missing)


def test_hook_timeout_stops_the_command(run_tool):
    out = run_hook(run_tool, {"HEAT_APPLY_CONFIG_CMD": "sleep 30"}, options={"timeout": 1})
    assert out["deploy_status_code"] == 124
    assert out["deploy_stderr"].endswith("timed out after 1 seconds\n")


def test_huge_output_is_bounded_keeping_the_tail(run_tool):
    code = "import sys; sys.stderr.write('x' * 2000000 + 'the end')"
    out = run_hook(run_tool, {"HEAT_APPLY_CONFIG_CMD": "%s -c %s" % (shlex.quote(sys.executable), shlex.quote(code))})
    assert out["deploy_status_code"] == 0
    assert out["deploy_stderr"].startswith("[... ")
    assert out["deploy_stderr"].endswith("the end")
    assert len(out["deploy_stderr"]) < 600 * 1024

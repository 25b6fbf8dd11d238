"""What ``heat-config-hook GROUP`` imports to run one deployment: its start-up is benchmarked (bench/hook_start.py).

Not timed: the modules a run imports are what make it slow, and Python lists them
(``PYTHONPROFILEIMPORTTIME``), so a heavy import creeping onto the path fails here.
"""
from __future__ import annotations

from tests.support.imports import added, importtime_modules, modules_after
from tests.support.sandbox import hook_json

#: Modules a script deployment run through ``heat-config-hook script`` must not import: dataclasses drags in
#: inspect, ast, dis and tokenize; typing, argparse (with gettext) and tempfile (with shutil, random, bz2, lzma)
#: each cost a few ms; the dispatcher's modules and the heavy libraries have no business on a hook's path.
HEAVY = ("dataclasses", "inspect", "ast", "typing", "argparse", "tempfile", "shutil",
         "heat_config.signals", "heat_config.journal", "heat_config.hook_runner", "heat_config.dispatch",
         "yaml", "jinja2", "requests", "keystoneauth1")


def test_script_hook_run_imports_nothing_heavy(run_tool, sandbox):
    env = {"HEAT_SCRIPT_WORKING": str(sandbox.path("lib", "heat-config-script")),
           "HEAT_SCRIPT_OUTPUTS": str(sandbox.path("run", "heat-config-script")),
           "PYTHONPROFILEIMPORTTIME": "1"}
    deployment = {
        "id": "1f0c5d2e-aaaa-4bbb-8ccc-000000000001", "name": "start", "group": "script", "options": {},
        "config": "#!/bin/sh\necho \"hello $who\"\necho done > $heat_outputs_path.result\n",
        "inputs": [{"name": "who", "type": "String", "value": "start"}],
        "outputs": [{"name": "result", "type": "String", "error_output": False}],
    }
    result, run = hook_json(run_tool, "script", deployment, env)
    assert result["deploy_status_code"] == 0 and result["result"] == "done\n"
    imported = importtime_modules(run.stderr)
    # The listing is there at all (importlib.import_module, which loads hooks.script itself, is not listed).
    assert {"heat_config.hook_cli", "hooks.toolkit.outputs"} <= imported
    assert added(imported, modules_after(""), HEAVY) == []

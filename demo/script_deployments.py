"""Demo step: script deployments through the whole pipeline, signalled to heat-api-cfn, then ``heat-config status``.

Heat adds two script deployments (CFN_SIGNAL, Heat's default transport, with
pre-signed URLs of a loopback heat-api-cfn) to the example metadata, beside its
``hello-script``.  The real ``os-collect-config`` collects them and runs
``os-refresh-config``, whose ``configure.d`` now also holds the heat-config
element's deployments template (rendered by ``os-apply-config``) and its
``55-heat-config``: the dispatcher runs each script and signals the result.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ELEMENT = REPO / "elements" / "heat-config"
STACK, STACK_ID = "shop", "5e1d0000-demo-stack"
ACCESS_KEY, SECRET_KEY = "AKIA-demo-0001", "demo-cfn-secret-key"


def say(text: str = "") -> None:
    print(text, flush=True)


def _script(n: int, name: str, config: str, cfn: Any, inputs: List[Dict[str, Any]],
            outputs: List[str]) -> Dict[str, Any]:
    url = cfn.signed_signal_url(ACCESS_KEY, STACK, STACK_ID, name)
    return {
        "id": "5f1e0c7e-01%02d" % n, "name": name, "group": "script", "creation_time": "2024-03-05T09:12:44Z",
        "options": {"timeout": 60}, "config": config,
        "outputs": [{"name": o, "type": "String", "error_output": False} for o in outputs],
        "inputs": inputs + [
            {"name": "deploy_action", "type": "String", "value": "CREATE"},
            {"name": "deploy_stack_id", "type": "String", "value": "%s/%s" % (STACK, STACK_ID)},
            {"name": "deploy_resource_name", "type": "String", "value": name},
            {"name": "deploy_signal_transport", "type": "String", "value": "CFN_SIGNAL"},
            {"name": "deploy_signal_id", "type": "String", "value": url},
            {"name": "deploy_signal_verb", "type": "String", "value": "POST"},
        ],
    }


def _install_orc_scripts(root: Path) -> Dict[str, str]:
    """The heat-config element's template and 55-heat-config, pointed at the demo's sandbox."""
    templates = root / "heat-config-templates"
    src = ELEMENT / "os-apply-config" / "var" / "run" / "heat-config"
    dst = templates / "var" / "run" / "heat-config"
    dst.mkdir(parents=True)
    for name in ("heat-config", "heat-config.oac"):
        if (src / name).exists():
            shutil.copy(src / name, dst / name)
    configure = root / "orc" / "configure.d"
    render = configure / "21-heat-config-deployments"
    render.write_text("#!/bin/sh\nexec os-apply-config -t %s -o %s/rendered\n" % (templates, root))
    env = {
        "HEAT_SHELL_CONFIG": str(root / "rendered" / "var" / "run" / "heat-config" / "heat-config"),
        "HEAT_CONFIG_DEPLOYED": str(root / "heat-config" / "deployed"),
        "HEAT_CONFIG_DEPLOYED_OLD": str(root / "heat-config" / "deployed-old"),
        "HEAT_SCRIPT_WORKING": str(root / "heat-config" / "script-working"),
        "HEAT_SCRIPT_OUTPUTS": str(root / "heat-config" / "script-outputs"),
    }
    dispatcher = configure / "55-heat-config"
    dispatcher.write_text("#!/bin/sh\n%s\nexec %s\n" % (
        "\n".join("export %s=%s" % kv for kv in env.items()),
        ELEMENT / "os-refresh-config" / "configure.d" / "55-heat-config"))
    for script in (render, dispatcher):
        script.chmod(0o755)
    return env


def step_script_deployments(d: Any) -> None:
    """Script deployments run by heat-config and signalled to heat-api-cfn."""
    from tests.servers.cfn import CfnServer

    cfn = CfnServer({ACCESS_KEY: SECRET_KEY}, "demo-project").start()
    try:
        env = _install_orc_scripts(d.root)
        d.metadata["deployments"] += [
            _script(1, "install_web", "#!/bin/sh\necho \"installing $package\"\n"
                                      "echo \"http://$(hostname):8080/\" > $heat_outputs_path.url\n",
                    cfn, [{"name": "package", "type": "String", "value": "nginx"}], ["url"]),
            _script(2, "check_disk", "#!/bin/sh\necho \"disk check failed\" >&2\nexit 3\n", cfn, [], []),
        ]
        say("Heat adds two script deployments (CFN_SIGNAL, pre-signed URLs of a loopback heat-api-cfn on %s);"
            % cfn.url)
        say("os-refresh-config now also runs the heat-config element's template and 55-heat-config:")
        d.publish()
        d.occ()
        for signal in cfn.signals:
            body = signal.body or {}
            extra = {k: v for k, v in body.items() if not k.startswith("deploy_")}
            say("    heat-api-cfn received the signal of %s: deploy_status_code %s%s" % (
                signal.arn.rsplit("/", 1)[-1], body.get("deploy_status_code"),
                ", outputs %s" % extra if extra else ""))
        say("heat-config status (what happened to each deployment, read from its journal):")
        status_env = dict(os.environ, PATH="%s:%s" % (BIN, os.environ.get("PATH", "/usr/bin:/bin")), **env)
        status = subprocess.run([str(BIN / "heat-config"), "status"], env=status_env, capture_output=True, text=True)
        for line in status.stdout.splitlines():
            say("    " + line)
        say("Nothing new: the next run signals nothing again:")
        before = len(cfn.signals)
        d.occ("--force")
        say("    heat-api-cfn received %d more signal(s)" % (len(cfn.signals) - before))
    finally:
        cfn.stop()

"""The os-apply-config templates the heat-config element ships (SPEC §6.3, §6.14, §12.13.1)."""
from __future__ import annotations

import configparser
import json
import shutil
import subprocess
from pathlib import Path

from tests.support.originals import orc_oac_originals, original_oac_argv
from tests.support.sandbox import PLANTED_SECRETS

ELEMENT = Path(__file__).resolve().parents[2] / "elements" / "heat-config"
TEMPLATES = ELEMENT / "os-apply-config"

HEAT_METADATA = {
    "deployments": [{"id": "d-1", "name": "dep", "group": "script", "config": "echo hi",
                     "inputs": [{"name": "deploy_signal_id", "value": "http://x/?sig=%s" % PLANTED_SECRETS[2]}]}],
    "os-collect-config": {
        "collectors": ["heat", "request"], "polling_interval": 30,
        "heat": {"auth_url": "http://127.0.0.1:5000/v3", "user_id": "u1", "password": PLANTED_SECRETS[0],
                 "project_id": "p1", "stack_id": "s1", "resource_name": "server", "region_name": None},
        "cfn": {"metadata_url": "http://127.0.0.1:8000/v1/", "stack_name": "st", "path": "server.Metadata",
                "secret_access_key": PLANTED_SECRETS[1], "access_key_id": "ak"},
        "zaqar": {"auth_url": "http://ks/v3", "user_id": "u", "password": "zp", "project_id": "p",
                  "queue_id": "q", "region_name": "r", "use_websockets": True},
        "request": {"metadata_url": "http://127.0.0.1:9000/md"},
    },
}


def _render(oac, md):
    shutil.copytree(TEMPLATES, oac.templates, dirs_exist_ok=True)
    r = oac.render("-m", md)
    assert r.returncode == 0, r.stderr
    return r


def test_deployments_file_is_the_json_list_and_never_readable_by_others(oac):
    _render(oac, oac.metadata("heat.json", HEAT_METADATA))
    path = oac.out / "var" / "run" / "heat-config" / "heat-config"
    assert json.loads(path.read_text()) == HEAT_METADATA["deployments"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_deployments_file_is_empty_without_deployments(oac):
    _render(oac, oac.metadata("other.json", {"other": 1}))
    assert (oac.out / "var" / "run" / "heat-config" / "heat-config").read_text() == ""


def test_os_collect_config_conf_follows_the_rendering_rules(oac):
    _render(oac, oac.metadata("heat.json", HEAT_METADATA))
    path = oac.out / "etc" / "os-collect-config.conf"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert "command = os-refresh-config\n" in text
    assert "collectors = heat\ncollectors = request\n" in text
    parser = configparser.RawConfigParser(strict=False)
    parser.read_string(text)
    assert parser.get("DEFAULT", "polling_interval") == "30"
    assert dict(parser.items("heat"))["password"] == PLANTED_SECRETS[0]
    assert dict(parser.items("heat"))["region_name"] == ""  # null renders as `key = `
    assert parser.get("cfn", "metadata_url") == "http://127.0.0.1:8000/v1/"
    assert parser.get("zaqar", "use_websockets") == "true"
    assert parser.get("request", "metadata_url") == "http://127.0.0.1:9000/md"


def test_command_override_and_absent_sections(oac):
    md = oac.metadata("m.json", {"os-collect-config": {"command": "my-command", "collectors": ["local"]}})
    _render(oac, md)
    text = (oac.out / "etc" / "os-collect-config.conf").read_text()
    assert text == "[DEFAULT]\ncommand = my-command\ncollectors = local\n"


def test_element_templates_render_like_the_original(oac, sandbox):
    originals = orc_oac_originals()
    md = oac.metadata("heat.json", HEAT_METADATA)
    _render(oac, md)
    theirs = sandbox.path("out-original")
    theirs.mkdir()
    r = subprocess.run([*original_oac_argv(originals), "-t", str(TEMPLATES), "-o", str(theirs), "-m", md,
                        "--fallback-metadata"], env=sandbox.env, capture_output=True, text=True, timeout=120,
                       cwd=str(sandbox.root))
    assert r.returncode == 0, r.stderr
    for rel in ("etc/os-collect-config.conf", "var/run/heat-config/heat-config"):
        assert (oac.out / rel).read_bytes() == (theirs / rel).read_bytes(), rel


def test_collected_metadata_flows_through_os_refresh_config_into_os_apply_config(oac, run_tool, sandbox):
    """The pipeline of SPEC §1.2-§1.3: OS_CONFIG_FILES reaches a configure.d script that runs os-apply-config."""
    shutil.copytree(TEMPLATES, oac.templates, dirs_exist_ok=True)
    md = oac.metadata("heat.json", HEAT_METADATA)
    script = sandbox.path("orc", "configure.d", "20-os-apply-config")
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/bash\nset -ue\nexec os-apply-config -o %s --fallback-metadata\n" % oac.out)
    script.chmod(0o755)
    r = run_tool("os-refresh-config", ["--lockfile", str(sandbox.path("run", "orc.lock"))],
                 env={"OS_CONFIG_FILES": md, "OS_APPLY_CONFIG_LOG_FILE": str(oac.log_file)})
    assert r.returncode == 0, r.stderr
    deployments = oac.out / "var" / "run" / "heat-config" / "heat-config"
    assert json.loads(deployments.read_text())[0]["id"] == "d-1"
    assert "writing %s" % deployments in r.stderr

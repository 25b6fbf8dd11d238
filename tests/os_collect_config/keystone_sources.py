"""Helpers for the heat, cfn and zaqar collector tests: config files that point the real command at the loopback cloud."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from tests.support.sandbox import PLANTED_SECRETS, Sandbox, assert_no_planted_secret

#: Server metadata as Heat keeps it (SPEC §7.10): one os-apply-config deployment, one script deployment.
METADATA: Dict[str, Any] = {
    "os-collect-config": {"command": "os-refresh-config"},
    "deployments": [
        {"id": "d1", "name": "dep-a", "group": "os-apply-config", "config": {"keystone": {"debug": True}},
         # A secret nobody registers for redaction: only keeping metadata out of the logs protects it.
         "inputs": [{"name": "deploy_password", "value": PLANTED_SECRETS[3]}]},
        {"id": "d2", "name": "dep-b", "group": "script", "config": "#!/bin/sh\necho hi", "inputs": []},
    ],
}


def write_config(sandbox: Sandbox, sections: Dict[str, Dict[str, Any]], name: str = "occ.conf") -> Path:
    """An os-collect-config INI file (0600, as it holds secrets); list values become repeated keys."""
    lines: List[str] = []
    for section, values in sections.items():
        lines.append("[%s]" % section)
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append("%s = %s" % (key, str(item).lower() if isinstance(item, bool) else item))
    return sandbox.write("etc/" + name, "\n".join(lines) + "\n", mode=0o600)


def printed(result) -> Dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_no_secret_in(paths: Iterable[Path], also: Optional[str] = None) -> None:
    """No planted secret in the given log files (and text): secrets are for 0600 state only."""
    for path in paths:
        if path.exists():
            assert_no_planted_secret(path.read_text(errors="replace"), str(path))
    if also is not None:
        assert_no_planted_secret(also, "output")

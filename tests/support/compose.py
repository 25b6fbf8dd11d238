"""Both Compose generations for the docker-compose hook tests: v1 (Debian 12's ``docker-compose`` 1.29) and v2.

Compose v2 is not packaged for Debian 12; scripts/setup unpacks Debian 13's
``docker-compose`` (2.26.1, the ``docker compose`` CLI plugin) under ``.cache/compose-v2``
(scripts/debian-download). A test run gets its own ``$DOCKER_CONFIG``: with the plugin
in ``cli-plugins/`` for v2, empty for v1, so that the hook's own choice (``docker compose
version`` answers → v2) is what picks the generation under test.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[2]
#: Where scripts/setup unpacks Debian 13's docker-compose package.
V2_CACHE = REPO / ".cache" / "compose-v2"
V2_PLUGIN = V2_CACHE / "root" / "usr" / "libexec" / "docker" / "cli-plugins" / "docker-compose"


@dataclass
class Compose:
    """One Compose generation as the hook will find it through ``env``."""

    generation: str  # "v1" or "v2"
    docker_config: Path

    @property
    def env(self) -> Dict[str, str]:
        return {"DOCKER_CONFIG": str(self.docker_config)}

    def container(self, project: str, service: str) -> str:
        """The name compose gives the first container of a service: v1 joins with ``_``, v2 with ``-``."""
        sep = "_" if self.generation == "v1" else "-"
        return sep.join((project, service, "1"))

    def version(self, docker_env: Dict[str, str]) -> str:
        """What this generation says of its version (``docker compose version`` / ``docker-compose version``)."""
        argv = ["docker", "compose", "version"] if self.generation == "v2" else ["docker-compose", "version", "--short"]
        done = subprocess.run(argv, env={**docker_env, **self.env}, capture_output=True, text=True, timeout=60)
        said = done.stdout.strip() or done.stderr.strip()
        return said.splitlines()[0] if said else "no answer (exit %d)" % done.returncode


def setup_problem(generation: str) -> str:
    """Why this generation cannot run here ("" when it can): a missing tool is scripts/setup's job, not a skip."""
    if generation == "v1" and not shutil.which("docker-compose"):
        return "docker-compose (Debian package, Compose v1) is missing: scripts/setup installs it"
    if generation == "v2" and not os.access(V2_PLUGIN, os.X_OK):
        return "Compose v2 plugin %s is missing: scripts/setup downloads it (scripts/debian-download)" % V2_PLUGIN
    return ""


def make_compose(generation: str, docker_config: Path) -> Compose:
    """A ``$DOCKER_CONFIG`` with the v2 plugin in ``cli-plugins/`` (v2) or without any plugin (v1)."""
    docker_config.mkdir(parents=True, exist_ok=True)
    if generation == "v2":
        plugins = docker_config / "cli-plugins"
        plugins.mkdir(exist_ok=True)
        (plugins / "docker-compose").symlink_to(V2_PLUGIN)
    return Compose(generation, docker_config)

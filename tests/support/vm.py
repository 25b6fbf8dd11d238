"""One sandboxed "server" running our agents against the real control plane.

The VM is a directory: every path the agents use (os-collect-config's cache, the os-refresh-config base
dir, the os-apply-config templates and output root, heat-config's state and hooks) is redirected into it,
so the host's /etc, /var, /usr and /opt are never touched. It is assembled the way diskimage-builder
assembles an image from our elements (orc scripts, oac templates, hook shims) and configured the way
boot-config configures a server: the server's ``os_collect_config`` attribute goes into cfn-init-data,
a first ``os-collect-config --one-time`` renders /etc/os-collect-config.conf from it, then the agent
runs continuously from that rendered file.

Two redirections cannot be expressed by environment variables, because the element scripts run the
tools bare (``exec os-apply-config``; occ's configured ``command = os-refresh-config``): small shims
first on PATH add ``-o <root>`` to os-apply-config and ``--lockfile`` to os-refresh-config.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from tests.support.wait import wait_for_process

REPO = Path(__file__).resolve().parents[2]
ELEMENTS = REPO / "elements"
BIN_DIR = Path(sys.executable).parent
FRAGMENTS = REPO / "boot_config" / "templates" / "fragments"
#: Templates boot-config writes when the image's elements did not (template path, boot-config fragment).
BOOT_CONFIG_TEMPLATES = (
    ("etc/os-collect-config.conf", "os-collect-config.conf"),
    ("etc/os-collect-config.conf.oac", "os-collect-config.conf.oac"),
    ("var/run/heat-config/heat-config", "heat-config"),
    ("var/run/heat-config/heat-config.oac", "heat-config.oac"),
)
#: Host paths the agents would use by default; a sandboxed run must not create any of them.
HOST_PATHS = ("/etc/os-collect-config.conf", "/var/lib/os-collect-config", "/var/run/os-collect-config",
              "/var/lib/heat-config", "/var/run/heat-config", "/var/run/os-refresh-config.lock",
              "/var/lib/os-apply-config-deployments", "/var/log/os-apply-config.log")
PHASES = ("pre-configure.d", "configure.d", "post-configure.d", "migration.d")


class VM:
    """A server's file system and agent processes, all under ``base``."""

    def __init__(self, base: Path, polling_interval: float = 2):
        self.base = base
        self.root = base / "root"          # os-apply-config's output root: the server's "/"
        self.polling_interval = polling_interval
        self.log_file = base / "agent.log"
        self.proc: Optional[subprocess.Popen] = None
        for d in ("bin", "templates", "orc", "hooks", "cache", "backup", "local-data", "lib/deployed",
                  "home", "tmp", "root/etc", "root/var/run/heat-config"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "cache").chmod(0o700)
        (base / "local-data").chmod(0o755)
        self._install_elements()

    # -- image assembly ---------------------------------------------------------------------
    def _install_elements(self) -> None:
        """Lay out orc scripts, oac templates and hook shims from elements/, as a built image has them."""
        for element in sorted(p for p in ELEMENTS.iterdir() if p.is_dir()):
            orc = element / "os-refresh-config"
            if orc.is_dir():
                shutil.copytree(orc, self.base / "orc", dirs_exist_ok=True)
            oac = element / "os-apply-config"
            if oac.is_dir():
                shutil.copytree(oac, self.base / "templates", dirs_exist_ok=True)
            hooks = element / "heat-config-hooks"
            if hooks.is_dir():
                for marker in hooks.iterdir():
                    self._script("hooks/" + marker.name,
                                 'exec "%s" %s\n' % (BIN_DIR / "heat-config-hook", marker.name))
        for rel, fragment in BOOT_CONFIG_TEMPLATES:
            target = self.base / "templates" / rel
            if not target.exists() and (FRAGMENTS / fragment).exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(FRAGMENTS / fragment, target)
        for phase in PHASES:
            (self.base / "orc" / phase).mkdir(exist_ok=True)
        self._script("bin/os-apply-config", 'exec "%s" -o "%s" "$@"\n' % (BIN_DIR / "os-apply-config", self.root))
        self._script("bin/os-refresh-config", 'exec "%s" --lockfile "%s" "$@"\n'
                     % (BIN_DIR / "os-refresh-config", self.base / "orc.lock"))

    def _script(self, rel: str, body: str) -> None:
        path = self.base / rel
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(0o755)

    @property
    def env(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OS_", "HEAT_", "PYTHON")) and k != "OS_CONFIG_FILES"}
        env.update(
            PATH="%s:%s:%s" % (self.base / "bin", BIN_DIR, os.environ.get("PATH", "/usr/bin:/bin")),
            HOME=str(self.base / "home"),
            TMPDIR=str(self.base / "tmp"),
            LC_ALL="C.UTF-8",
            OS_REFRESH_CONFIG_BASE_DIR=str(self.base / "orc"),
            OS_CONFIG_APPLIER_TEMPLATES=str(self.base / "templates"),
            OS_CONFIG_FILES_PATH=str(self.base / "cache" / "os_config_files.json"),
            HEAT_SHELL_CONFIG=str(self.root / "var/run/heat-config/heat-config"),
            HEAT_CONFIG_DEPLOYED=str(self.base / "lib/deployed"),
            HEAT_CONFIG_DEPLOYED_OLD=str(self.root / "var/run/heat-config/deployed"),
            HEAT_CONFIG_HOOKS=str(self.base / "hooks"),
            # the hooks' and orc companions' own directories (their defaults are under /var)
            HEAT_SCRIPT_WORKING=str(self.root / "var/lib/heat-config/heat-config-script"),
            HEAT_SCRIPT_OUTPUTS=str(self.root / "var/run/heat-config/heat-config-script"),
            HEAT_ANSIBLE_WORKING=str(self.root / "var/lib/heat-config/heat-config-ansible"),
            HEAT_ANSIBLE_OUTPUTS=str(self.root / "var/run/heat-config/heat-config-ansible"),
            HEAT_DOCKER_COMPOSE_WORKING=str(self.root / "var/lib/heat-config/heat-config-docker-compose"),
            HEAT_KUBELET_MANIFESTS=str(self.root / "var/lib/heat-config/heat-config-kubelet/kubelet-manifests"),
            OS_APPLY_CONFIG_DEPLOYED_DIR=str(self.root / "var/lib/os-apply-config-deployments/deployed"),
            ANSIBLE_LOCAL_TEMP=str(self.base / "tmp" / "ansible"),
            # the VM's python for ansible modules (discovery would pick whatever shim PATH has)
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_HOME=str(self.base / "home" / ".ansible"),
        )
        return env

    @property
    def occ_conf(self) -> Path:
        return self.root / "etc" / "os-collect-config.conf"

    def _occ_argv(self, *extra: str) -> List[str]:
        return [str(BIN_DIR / "os-collect-config"), *extra,
                "--cachedir", str(self.base / "cache"), "--backup-cachedir", str(self.base / "backup"),
                "--heat_local-path", str(self.base / "cfn-init-data"),
                "--local-path", str(self.base / "local-data"),
                # never the link-local metadata service, even if a broken config re-enables ec2:
                # port 9 (discard) on loopback, where nothing listens here
                "--ec2-metadata-url", "http://127.0.0.1:9/latest/meta-data", "--debug"]

    # -- boot-config ------------------------------------------------------------------------
    def boot(self, os_collect_config: Dict, image_settings: Optional[Dict[str, Dict]] = None) -> str:
        """First boot: occ.conf rendered from the server's os_collect_config, as boot-config does.

        ``image_settings`` are collector settings the image adds to Heat's (e.g. ``{"zaqar":
        {"use_websockets": True}}``): merged into the first pass's data, and kept as a local-data file so
        that every later rendering of occ.conf from Heat's metadata keeps them too."""
        settings = dict(os_collect_config)
        for section, values in (image_settings or {}).items():
            settings[section] = dict(settings.get(section) or {}, **values)
        if image_settings:
            (self.base / "local-data" / "image-occ-settings.json").write_text(
                json.dumps({"os-collect-config": image_settings}))
        (self.base / "cfn-init-data").write_text(json.dumps({"os-collect-config": settings}))
        self.occ_conf.write_text("[DEFAULT]\ncommand = os-refresh-config\ncollectors = heat_local\n")
        with open(self.log_file, "ab") as log:
            log.write(b"=== boot: os-collect-config --one-time (heat_local) ===\n")
            log.flush()
            rc = subprocess.run(self._occ_argv("--config-file", str(self.occ_conf), "--one-time"),
                                env=self.env, cwd=str(self.base), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, timeout=120).returncode
        rendered = self.occ_conf.read_text()
        if rc != 0 or "command = os-refresh-config" not in rendered or "collectors" not in rendered:
            shown = re.sub(r"(?m)^((password|secret_access_key|metadata_url) = ).+$", r"\1<redacted>", rendered)
            raise AssertionError("boot pass failed (exit %s); rendered config:\n%s\nlog:\n%s"
                                 % (rc, shown, self.log()[-8000:]))
        return rendered

    # -- the running agent ------------------------------------------------------------------
    def start(self) -> None:
        """os-collect-config in continuous mode from the rendered file, with a short polling interval."""
        with open(self.log_file, "ab") as log:
            log.write(b"=== start: os-collect-config ===\n")
            log.flush()
            self.proc = subprocess.Popen(
                self._occ_argv("--config-file", str(self.occ_conf),
                               "--polling-interval", str(self.polling_interval), "--min-polling-interval", "1"),
                env=self.env, cwd=str(self.base), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)

    def descendants(self) -> List[int]:
        """PIDs of the agent and of every process it started (hooks may live in their own groups)."""
        if self.proc is None:
            return []
        children: Dict[int, List[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def kill(self) -> None:
        """SIGKILL the agent and all its descendants at once: what a crash or power cut does."""
        for _ in range(3):  # repeat: a dying parent may have forked meanwhile
            for pid in self.descendants():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = self.descendants()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def wait_for_file(self, path: Path, timeout: float) -> None:
        wait_for_process(path.exists, self.proc, timeout, "%s to appear" % path, self.log)

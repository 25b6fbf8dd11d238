"""Run the agents against loopback servers and say, step by step, what happened.

Everything happens in a temporary directory on 127.0.0.1, with the real console
scripts.  Steps 1-5: the Swift temp-URL server of the test suite holds the example
metadata (demo/example/), and ``os-collect-config --one-time`` polls it and runs
os-refresh-config, whose os-apply-config renders the bundled templates.  Step 6:
script deployments signalled to a loopback heat-api-cfn.  Step 7: the whole pipeline
on a server laid out from elements/: a loopback Keystone and Heat serve the bundled
script, ansible and (where an engine can start) docker-compose deployments, and
os-collect-config → os-refresh-config → os-apply-config and heat-config → hooks →
signals back to Heat → ``heat-config status``.  Each step is one function in STEPS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers.swift import SwiftServer  # noqa: E402  (the loopback server shared with the tests)
from demo.script_deployments import step_script_deployments  # noqa: E402  (script hooks, CFN signals, status)
from demo.pipeline import step_whole_pipeline  # noqa: E402  (Heat → occ → orc → oac + heat-config → hooks → Heat)

BIN = Path(sys.executable).parent
EXAMPLE = Path(__file__).resolve().parent / "example" / "server1-metadata.json"
TEMPLATES = Path(__file__).resolve().parent / "example" / "templates"


@dataclass
class Demo:
    root: Path
    swift: SwiftServer
    metadata: Dict = field(default_factory=dict)
    log_seen: int = 0

    @property
    def cachedir(self) -> Path:
        return self.root / "cache"

    @property
    def url(self) -> str:
        return self.swift.temp_url("heat", "server1-metadata")

    def publish(self) -> None:
        self.swift.put_object("heat", "server1-metadata", self.metadata)

    def occ(self, *extra: str) -> subprocess.CompletedProcess:
        """One real ``os-collect-config --one-time`` run, sandboxed in the demo directory."""
        argv = [str(BIN / "os-collect-config"), "--one-time", "--cachedir", str(self.cachedir),
                "--backup-cachedir", str(self.root / "backup"), "--command", str(self.root / "command.sh"),
                "--request-metadata-url", self.url, "--log-file", str(self.root / "occ.log"), "request", *extra]
        self.swift.clear()
        env = dict(os.environ, HOME=str(self.root), OS_REFRESH_CONFIG_BASE_DIR=str(self.root / "orc"),
                   OS_CONFIG_APPLIER_TEMPLATES=str(TEMPLATES), OS_APPLY_CONFIG_LOG_FILE="",
                   PATH="%s:%s" % (BIN, os.environ.get("PATH", "/usr/bin:/bin")))
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        for line in proc.stdout.splitlines():
            say("    | " + line)
        gets = self.swift.received("GET")
        sent = ", ".join("%s%s" % (r.method, " (conditional)" if r.header("If-None-Match") else "") for r in gets)
        say("    os-collect-config exited %d; the server saw: %s" % (proc.returncode, sent or "nothing"))
        log = (self.root / "occ.log").read_text().splitlines()
        for line in log[self.log_seen:]:
            if " WARNING " in line or " ERROR " in line:
                say("    log: " + line.split(" [-] ", 1)[-1])
        self.log_seen = len(log)
        return proc

    def show_rendered(self, rel: str) -> None:
        path = self.root / "rendered" / rel
        say("    os-refresh-config ran configure.d/20-os-apply-config; /%s (mode %04o) now reads:"
            % (rel, path.stat().st_mode & 0o777))
        for line in path.read_text().splitlines():
            say("    > " + line)

    def cache_files(self) -> List[str]:
        return sorted(p.name for p in self.cachedir.iterdir() if p.name.endswith(".json"))


def say(text: str = "") -> None:
    print(text, flush=True)


def step_first_collection(d: Demo) -> None:
    """First collection."""
    say("Heat stores the server's metadata (3 deployments, 2 of them os-apply-config) in Swift.")
    d.publish()
    say("os-collect-config collects it: the command runs and gets one file per key:")
    d.occ()
    say("    cache now holds: %s" % ", ".join(d.cache_files()))
    d.show_rendered("etc/keystone/keystone.conf")


def step_nothing_changed(d: Demo) -> None:
    """Nothing changed."""
    say("Nothing changed on the server: one conditional GET, answered 304, and the command does not run:")
    d.occ()


def step_deployment_changed(d: Demo) -> None:
    """A deployment changes."""
    say("An operator sets keystone debug = true (stack update): the change is seen, the command runs:")
    d.metadata["deployments"][0]["config"]["keystone"]["debug"] = True
    d.publish()
    d.occ()
    say("    keystone-config.json now says: %s" % (d.cachedir / "keystone-config.json").read_text().replace("\n", ""))
    d.show_rendered("etc/keystone/keystone.conf")


def step_deployment_removed(d: Demo) -> None:
    """A deployment is removed."""
    say("The motd deployment is removed: that is a change too, and its stale cache files are cleaned:")
    d.metadata["deployments"] = [x for x in d.metadata["deployments"] if x["name"] != "motd"]
    d.publish()
    d.occ()
    say("    cache now holds: %s" % ", ".join(d.cache_files()))


def step_source_down(d: Demo) -> None:
    """The metadata server goes down."""
    say("Swift goes down (HTTP 503) while nothing else changes: the last good metadata stays in force:")
    d.swift.fail_with = 503
    d.occ("--force")
    d.swift.fail_with = None
    say("    (--force ran the command anyway: it still got the request and keystone-config files)")


STEPS: List[Callable[[Demo], None]] = [
    step_first_collection,
    step_nothing_changed,
    step_deployment_changed,
    step_deployment_removed,
    step_source_down,
    step_script_deployments,
    step_whole_pipeline,
]


def main() -> int:
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="os-config-agents-demo-") as tmp:
        root = Path(tmp)
        command = root / "command.sh"
        command.write_text("#!/bin/sh\necho \"command run; OS_CONFIG_FILES has:\"\n"
                           "echo \"$OS_CONFIG_FILES\" | tr ':' '\\n' | sed 's|.*/|  |'\n"
                           "exec os-refresh-config --lockfile %s/orc.lock 2>>%s/orc.log\n" % (root, root))
        command.chmod(0o755)
        apply_script = root / "orc" / "configure.d" / "20-os-apply-config"
        apply_script.parent.mkdir(parents=True)
        # The element's script runs a bare os-apply-config (output root /); the demo renders into its sandbox.
        apply_script.write_text("#!/bin/sh\nexec os-apply-config -o %s/rendered\n" % root)
        apply_script.chmod(0o755)
        swift = SwiftServer().start()
        demo = Demo(root, swift, json.loads(EXAMPLE.read_text()))
        say("Loopback Swift on %s; sandbox %s" % (swift.url, root))
        try:
            for number, step in enumerate(STEPS, 1):
                say()
                say("Step %d. %s" % (number, (step.__doc__ or "").strip()))
                started = time.monotonic()
                step(demo)
                say("    [step %d: %.1f s]" % (number, time.monotonic() - started))
        finally:
            swift.stop()
    say()
    say("Done in %.1f s: every step ran the real agents against real HTTP servers on 127.0.0.1."
        % (time.monotonic() - begun))
    return 0


if __name__ == "__main__":
    sys.exit(main())

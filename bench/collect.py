#!/usr/bin/env python3
"""os-collect-config 14.1.0 (from PyPI) against ours, side by side in one run.

Both are installed into virtualenvs of their own (ours from this checkout, not
editable, so neither pays for a development install), then measured on the same
loopback servers:

1. cold start of ``--print --one-time`` with the local collector;
2. requests and bytes on the wire per idle poll (request and ec2 collectors), and
   whether an ec2 change is seen at all;
3. idle RSS of the agent's process tree;
4. reaction time from a metadata change to the command's start: request collector
   at the default 30 s interval for both, and our zaqar websocket path.

Usage: bench/collect.py [--quick]   (prints medians and ratios; --quick takes fewer samples)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers.base import LoopbackServer, Request, Response  # noqa: E402
from tests.servers.cloud import start_cloud  # noqa: E402
from tests.servers.conditional import conditional_response, etag_of  # noqa: E402
from tests.servers.ec2 import Ec2Server  # noqa: E402
from tests.support.wait import wait_for  # noqa: E402

ORIGINALS = REPO / "bench" / ".venv-originals"
OURS = REPO / "bench" / ".venv-ours"
ORIGINAL_PINS = ["os-collect-config==14.1.0", "os-apply-config==14.1.0", "os-refresh-config==14.1.0"]


# -- set-up ----------------------------------------------------------------------------------------
def pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)
    if proc.returncode:
        sys.exit("pip install %s failed:\n%s" % (" ".join(args), proc.stderr[-2000:]))


def install_ours() -> Path:
    """Ours from this checkout as users get it (not editable: a development install's import hook costs
    every start), reinstalled every run, in bench/.venv-ours; returns its bin directory. Every bench uses it."""
    if not (OURS / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(OURS)], check=True)
        pip(OURS, str(REPO))
    pip(OURS, "--no-deps", "--force-reinstall", str(REPO))
    return OURS / "bin"


def ensure_venvs() -> Tuple[str, str]:
    """Both tools' executables; the originals installed once, ours reinstalled from the checkout every run."""
    if not (ORIGINALS / "bin" / "os-collect-config").exists():
        subprocess.run([sys.executable, "-m", "venv", str(ORIGINALS)], check=True)
        pip(ORIGINALS, *ORIGINAL_PINS)
    return str(ORIGINALS / "bin" / "os-collect-config"), str(install_ours() / "os-collect-config")


def clean_env(home: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "VIRTUAL_ENV", "PYTHON"))}
    env["HOME"] = home
    # The original's local collector saves and restores the locale and crashes when only
    # LANG=C.UTF-8 is set (as on these machines); LC_ALL=C lets it run at all.
    env["LC_ALL"] = "C"
    return env


def median(xs: List[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p95(xs: List[float]) -> float:
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


# -- a TCP proxy that counts what crosses the wire ----------------------------------------------------
class CountingProxy:
    """Forwards 127.0.0.1:<port> to a server and counts bytes both ways (headers included)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def reset(self) -> None:
        with self.lock:
            self.bytes = 0
            self.connections = 0

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections += 1
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.bytes += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


# -- the metadata a Heat server would hold -------------------------------------------------------------
def heat_metadata(revision: int) -> Dict[str, object]:
    """A realistic document: the agent's own settings plus a few script deployments (about 7 KB)."""
    script = "#!/bin/bash\nset -eu\n" + "".join("echo configuring step %d >> /var/log/app.log\n" % i for i in range(40))
    deployments = [
        {"id": "dep-%d-%d" % (i, revision), "name": "%02d_config" % i, "group": "script", "config": script,
         "inputs": [{"name": "deploy_action", "type": "String", "value": "CREATE"}],
         "outputs": [], "options": {}, "creation_time": "2026-11-25T10:00:00Z"}
        for i in range(3)
    ]
    return {"os-collect-config": {"command": "os-refresh-config", "polling_interval": 30},
            "revision": revision, "deployments": deployments}


class MetadataServer(LoopbackServer):
    """A JSON document with ETag and Last-Modified, as Swift serves an object behind a temp URL."""

    def __init__(self) -> None:
        super().__init__()
        self.set(heat_metadata(1))
        self.add_route("GET", "/metadata", self._get)
        self.add_route("HEAD", "/metadata", self._get)

    def set(self, doc: Dict[str, object]) -> None:
        self.body = json.dumps(doc).encode()
        self.mtime = time.time() + 1

    def _get(self, request: Request, match: object) -> Response:
        return conditional_response(request, self.body, etag=etag_of(self.body), last_modified=self.mtime)


# -- 1. cold start -------------------------------------------------------------------------------------
def cold_start(exe: str, work: Path, runs: int) -> float:
    local = work / "local"
    local.mkdir(mode=0o700)
    (local / "app.json").write_text(json.dumps(heat_metadata(1)))
    argv = [exe, "--print", "--one-time", "--cachedir", str(work / "cache"), "--local-path", str(local), "local"]
    (work / "cache").mkdir(mode=0o700)
    env = clean_env(str(work))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return median(times)


# -- 2. idle poll cost ---------------------------------------------------------------------------------
def one_time(exe: str, work: Path, args: List[str], command: str = "true") -> None:
    argv = [exe, "--one-time", "--command", command, "--cachedir", str(work / "cache"),
            "--backup-cachedir", str(work / "backup"), *args]
    subprocess.run(argv, env=clean_env(str(work)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def idle_poll_cost(exe: str, work: Path, server: LoopbackServer, args_for: Callable[[str], List[str]]) -> Tuple[int, int]:
    """Requests and wire bytes of one poll when nothing changed (after two priming polls)."""
    (work / "cache").mkdir(mode=0o700)
    proxy = CountingProxy(server.port)
    try:
        for _ in range(2):
            one_time(exe, work, args_for(proxy.url))
        server.clear()
        proxy.reset()
        one_time(exe, work, args_for(proxy.url))
        return len(server.requests), proxy.bytes
    finally:
        proxy.close()


def ec2_change_seen(exe: str, work: Path, refresh_s: Optional[float] = None) -> bool:
    """Prime with one tree, change a leaf, poll once more: did the command run on the change?

    With ``refresh_s`` (ours: ``[ec2] full_refresh_interval``) the last poll comes once that interval has
    passed, the longest a changed leaf may go unseen; the idle polls above run with the default (300 s).
    """
    server = Ec2Server({"instance-id": "i-1", "local-ipv4": "10.0.0.5", "placement": {"availability-zone": "nova"}})
    with server:
        (work / "cache").mkdir(mode=0o700)
        args = ["--ec2-metadata-url", server.metadata_url, "ec2"]
        if refresh_s is not None:
            args = ["--ec2-full-refresh-interval", str(refresh_s)] + args
        one_time(exe, work, args)
        one_time(exe, work, args)
        server.set("local-ipv4", "10.0.0.99")
        if refresh_s is not None:
            time.sleep(refresh_s + 0.1)
        marker = work / "ran"
        one_time(exe, work, args, command="touch %s" % marker)
        return marker.exists()


# -- 3. idle RSS ---------------------------------------------------------------------------------------
def tree_rss_kib(root_pid: int) -> int:
    children: Dict[int, List[int]] = {}
    rss: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/status" % entry) as f:
                kib = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = kib
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def start_agent(exe: str, work: Path, args: List[str], command: str) -> subprocess.Popen:
    (work / "cache").mkdir(mode=0o700, exist_ok=True)
    argv = [exe, "--command", command, "--cachedir", str(work / "cache"),
            "--backup-cachedir", str(work / "backup"), *args]
    return subprocess.Popen(argv, env=clean_env(str(work)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_agent(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def idle_rss_mib(exe: str, work: Path, server: MetadataServer, seconds: int) -> float:
    proc = start_agent(exe, work, ["--request-metadata-url", server.url + "/metadata", "request"], "true")
    samples = []
    try:
        time.sleep(3)  # first poll and command done
        for _ in range(seconds):
            samples.append(tree_rss_kib(proc.pid) / 1024)
            time.sleep(1)
    finally:
        stop_agent(proc)
    return median(samples)


# -- 4. reaction time ----------------------------------------------------------------------------------
def command_starts(marker: Path) -> List[float]:
    try:
        return [float(x) for x in marker.read_text().split()]
    except (OSError, ValueError):
        return []


def wait_for_start(marker: Path, count: int, timeout: float) -> Optional[float]:
    """When the command started for the ``count``-th time, or None if it did not within ``timeout``."""
    def nth_start() -> Optional[float]:
        starts = command_starts(marker)
        return starts[count - 1] if len(starts) >= count else None

    try:
        return wait_for(nth_start, timeout, "start %d of the command" % count, interval=0.02)
    except TimeoutError:
        return None


def reaction_times(exe: str, work: Path, args: List[str], change: Callable[[int], None], samples: int,
                   warmup: float, spread: float) -> List[float]:
    """Seconds from a metadata change to the command's start, ``samples`` times at random phases."""
    marker = work / "starts"
    command = "date +%%s.%%N >> %s" % marker
    proc = start_agent(exe, work, args, command)
    delays = []
    try:
        if wait_for_start(marker, 1, 60) is None:
            raise RuntimeError("%s never ran its command" % exe)
        time.sleep(warmup)
        for i in range(samples):
            time.sleep(random.uniform(0, spread))
            seen = len(command_starts(marker))
            t0 = time.time()
            change(i + 2)
            started = wait_for_start(marker, seen + 1, spread + 35)
            delays.append((started - t0) if started is not None else float("inf"))
    finally:
        stop_agent(proc)
    return delays


# -- report --------------------------------------------------------------------------------------------
def ratio(original: float, ours: float) -> str:
    if not ours or ours != ours or original != original:
        return "n/a"
    return "%.1fx" % (original / ours)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 3 minutes instead of 8)")
    opts = parser.parse_args()
    cold_runs, rss_s, samples = (7, 15, 3) if opts.quick else (21, 60, 8)
    original, ours = ensure_venvs()
    tools = {"original 14.1.0": original, "ours": ours}
    base = Path(tempfile.mkdtemp(prefix="bench-collect-"))
    results: Dict[str, Dict[str, object]] = {name: {} for name in tools}

    def work(tag: str) -> Path:
        path = base / tag
        path.mkdir(parents=True)
        return path

    try:
        for name, exe in tools.items():
            slug = name.split()[0]
            results[name]["cold_start_s"] = cold_start(exe, work(slug + "-cold"), cold_runs)
            with MetadataServer() as server:
                results[name]["request_idle"] = idle_poll_cost(
                    exe, work(slug + "-req"), server,
                    lambda url: ["--request-metadata-url", url + "/metadata", "request"])
            tree = {"instance-id": "i-1", "local-ipv4": "10.0.0.5", "hostname": "vm1",
                    "placement": {"availability-zone": "nova"},
                    "public-keys": {"0=mykey": {"openssh-key": "ssh-rsa AAAA" + "B" * 300}}}
            with Ec2Server(tree) as ec2:
                results[name]["ec2_idle"] = idle_poll_cost(
                    exe, work(slug + "-ec2"), ec2, lambda url: ["--ec2-metadata-url", url + "/latest/meta-data", "ec2"])
            results[name]["ec2_change_seen"] = ec2_change_seen(exe, work(slug + "-ec2chg"),
                                                               1.0 if name == "ours" else None)
            with MetadataServer() as server:
                results[name]["idle_rss_mib"] = idle_rss_mib(exe, work(slug + "-rss"), server, rss_s)
            with MetadataServer() as server:
                delays = reaction_times(
                    exe, work(slug + "-react"), ["--request-metadata-url", server.url + "/metadata", "request"],
                    lambda rev: server.set(heat_metadata(rev)), samples, warmup=65, spread=30)
                results[name]["reaction_request"] = delays
        cloud = start_cloud()
        try:
            w = work("ours-zaqar")
            conf = w / "occ.conf"
            conf.write_text(
                "[zaqar]\nauth_url = %s\nuser_id = %s\npassword = %s\nproject_id = %s\nqueue_id = metadata\n"
                "use_websockets = true\n" % (cloud.auth_url, cloud.user_id, cloud.password, cloud.project_id))
            conf.chmod(0o600)
            cloud.zaqar.post_message(cloud.project_id, "metadata", heat_metadata(1))
            delays = reaction_times(
                ours, w, ["--config-file", str(conf), "zaqar"],
                lambda rev: cloud.zaqar.post_message(cloud.project_id, "metadata", heat_metadata(rev)),
                samples * 2, warmup=2, spread=3)
            results["ours"]["reaction_websocket"] = delays
        finally:
            cloud.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)

    o, u = results["original 14.1.0"], results["ours"]
    print("\nos-collect-config: original 14.1.0 vs ours (medians; lower is better)")
    print("%-44s %16s %16s %8s" % ("measure", "original", "ours", "ratio"))

    def row(label: str, a: float, b: float, fmt: str) -> None:
        print("%-44s %16s %16s %8s" % (label, fmt % a, fmt % b, ratio(a, b)))

    row("cold start --print --one-time (local), s", o["cold_start_s"], u["cold_start_s"], "%.3f")
    for key, label in (("request_idle", "request"), ("ec2_idle", "ec2")):
        row("%s: requests per idle poll" % label, o[key][0], u[key][0], "%d")
        row("%s: bytes on the wire per idle poll" % label, o[key][1], u[key][1], "%d")
    print("%-44s %16s %16s" % ("ec2: leaf change seen (ours: within refresh)", o["ec2_change_seen"],
                               u["ec2_change_seen"]))
    row("idle RSS of the process tree, MiB", o["idle_rss_mib"], u["idle_rss_mib"], "%.1f")
    row("reaction, request @30 s interval, median s", median(o["reaction_request"]), median(u["reaction_request"]), "%.2f")
    row("reaction, request @30 s interval, p95 s", p95(o["reaction_request"]), p95(u["reaction_request"]), "%.2f")
    ws = u["reaction_websocket"]
    print("%-44s %16s %16s" % ("reaction, zaqar websocket (ours), median s", "-", "%.3f" % median(ws)))
    print("%-44s %16s %16s" % ("reaction, zaqar websocket (ours), p95 s", "-", "%.3f" % p95(ws)))
    print("\nsamples: cold start %d runs, RSS %d s, reaction %d (request) / %d (websocket)"
          % (cold_runs, rss_s, samples, len(ws)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fleet cost: N agents, ours and the originals, against the real control plane of tests/e2e (issue 16).

    python bench/fleet.py                       # N=10, every transport, both tools (about 55 minutes)
    python bench/fleet.py --agents 50 --idle-s 600 --herd-outage-s 120
    python bench/fleet.py --transports heat --tools ours,original --agents 200

One command from a clone: it builds (or reuses) the control plane's virtualenv
(tests/e2e/controlplane.py: Keystone, heat-api, heat-api-cfn, Swift, Zaqar), the
originals' venv (os-collect-config 14.1.0 from PyPI) and ours (bench/collect.py), starts
the plane in a temporary directory and stops it at the end.

For each transport (POLL_SERVER_HEAT, POLL_SERVER_CFN, POLL_TEMP_URL, ZAQAR_MESSAGE) and
each tool, one stack holds N ``OS::Heat::DeployedServer`` in ResourceGroups of 50 (each
agent gets its own server's credentials and metadata) and a SoftwareDeploymentGroup of one
``script`` config on each group (NO_SIGNAL: the bench measures the agents' polling, not
the hooks).  N agents run as real processes, configured from their server's
``os_collect_config`` attribute, with ``command`` = a one-line script that records when
it ran.  The tools run one after the other on the same plane, so what the plane spends
is theirs alone.

What is measured, per agent-hour:
- requests and bytes per service and Keystone tokens issued (POST /v3/auth/tokens answered
  201): every agent's plain-HTTP traffic goes through a counting forward proxy
  (``http_proxy``; both tools honour it), which attributes each request to the service by
  its port.  A websocket is a CONNECT tunnel through it: one request when opened, and its
  bytes either way as they pass;
- server CPU seconds per service, from /proc (utime + stime of each service's processes),
  minus an idle window of the same length with no agents;
- reaction: one stack UPDATE (a new input value) to every agent having run its command,
  p50 and p95 over the agents;
- herd (heat transport only): heat-api stopped for ``--herd-outage-s`` then started; the
  request rate per second to heat-api, plotted for both tools (matplotlib if installed,
  else a CSV next to it).

With ``--access-logs`` every API also logs each request with its duration, and the plane's
logs are kept under ``--out``: bench/access_log.py sums one per time bucket, which tells
where a slow request waited.

Not in CI; prints a table and writes ``--out`` (JSON, CSV, PNG).  Figures from the runs so
far, and the extrapolation to 10,000 and 100,000 servers: bench/FLEET.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from collect import clean_env, ensure_venvs  # noqa: E402
from tests.e2e import controlplane  # noqa: E402

#: transport → (software_config_transport, collector name, settings added to the server's os_collect_config)
TRANSPORTS: Dict[str, Tuple[str, str, Dict[str, Dict[str, Any]]]] = {
    "heat": ("POLL_SERVER_HEAT", "heat", {}),
    "cfn": ("POLL_SERVER_CFN", "cfn", {}),
    "temp_url": ("POLL_TEMP_URL", "request", {}),
    "zaqar": ("ZAQAR_MESSAGE", "zaqar", {}),
    # push: the image sets use_websockets, as tests/e2e/test_script.py's websocket scenario does
    "zaqar_ws": ("ZAQAR_MESSAGE", "zaqar", {"zaqar": {"use_websockets": True}}),
}
#: The control plane's services whose CPU is read, by the port name in controlplane.json.
SERVICE_PORTS = {"keystone": "keystone", "heat-api": "heat", "heat-api-cfn": "cfn", "swift-proxy": "swift",
                 "zaqar": "zaqar", "zaqar-websocket": "zaqar-websocket"}
#: Services whose CPU is measured: those the agents talk to, plus heat-engine, which does the work behind
#: heat-api's and heat-api-cfn's metadata reads.
CPU_SERVICES = tuple(SERVICE_PORTS) + ("heat-engine",)


# -- a counting forward proxy ------------------------------------------------------------------------
#: How long the proxy waits for a service's answer before it answers 502 itself (a saturated heat-api-cfn
#: at N = 50 took longer).
UPSTREAM_TIMEOUT_S = 60.0

class Tally:
    """Requests (also by method and status), bytes and tokens per service, and request times (for the herd),
    since ``reset``."""

    def __init__(self, names: Dict[int, str]) -> None:
        self.names = names
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests: Dict[str, int] = {}
            self.kinds: Dict[str, Dict[str, int]] = {}
            self.bytes: Dict[str, int] = {}
            self.tokens = 0
            self.times: Dict[str, List[float]] = {}

    def add(self, port: int, method: str, path: str, status: int, nbytes: int, arrived: float) -> None:
        """Count one relayed request; ``arrived`` (when it reached the proxy) places it in the herd's seconds."""
        name = self.add_bytes(port, nbytes)
        with self.lock:
            self.requests[name] = self.requests.get(name, 0) + 1
            kinds = self.kinds.setdefault(name, {})
            kind = "%s %d" % (method, status)
            kinds[kind] = kinds.get(kind, 0) + 1
            self.times.setdefault(name, []).append(arrived)
            if method == "POST" and path.rstrip("/").endswith("/auth/tokens") and status == 201:
                self.tokens += 1

    def add_bytes(self, port: int, nbytes: int) -> str:
        """Count bytes to or from a service (a tunnel's, as they pass); returns the service's name."""
        name = self.names.get(port, "port %d" % port)
        with self.lock:
            self.bytes[name] = self.bytes.get(name, 0) + nbytes
        return name


class ProxyServer(ThreadingHTTPServer):
    """socketserver listens with a backlog of 5: 200 agents starting at once overflowed it, their connects
    timed out and their retries piled up in front of Keystone, an artefact of the bench, not of a cloud."""

    request_queue_size = 4096
    daemon_threads = True


def pipe_until_closed(a: socket.socket, b: socket.socket, counted: Callable[[int], Any]) -> None:
    """Copy bytes both ways between ``a`` and ``b`` until either side closes or fails."""
    with selectors.DefaultSelector() as sel:
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while True:
            for key, _ in sel.select():
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
                except OSError:
                    return
                counted(len(data))


def start_proxy(tally: Tally) -> Tuple[ThreadingHTTPServer, int]:
    """An HTTP/1.1 forward proxy on 127.0.0.1 that counts every request and byte (headers included)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            arrived = time.time()  # the rate the server is asked for: a slow answer must not move the request
            parts = urlsplit(self.path)
            port = parts.port or 80
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
            sent = len(self.requestline) + sum(len(k) + len(v) + 4 for k, v in self.headers.items()) + length
            try:
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", port, timeout=UPSTREAM_TIMEOUT_S)
                conn.request(self.command, (parts.path or "/") + ("?" + parts.query if parts.query else ""),
                             body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status, reason, out_headers = resp.status, resp.reason, resp.getheaders()
                conn.close()
            except OSError:  # the server refused, or did not answer within UPSTREAM_TIMEOUT_S
                tally.add(port, self.command, parts.path, 0, sent, arrived)
                self._answer(lambda: self.send_error(502))
                return
            received = sum(len(k) + len(v) + 4 for k, v in out_headers)
            tally.add(port, self.command, parts.path, status, sent + received + len(data), arrived)
            self._answer(lambda: self._send(status, reason, out_headers, data))

        def _send(self, status: int, reason: str, out_headers: List[Tuple[str, str]], data: bytes) -> None:
            self.send_response(status, reason)
            for k, v in out_headers:
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _answer(self, send: Callable[[], None]) -> None:
            """``send()`` the answer, unless the agent gave up waiting (its own timeout) and hung up."""
            try:
                send()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay

        def do_CONNECT(self) -> None:
            """A tunnel, which a websocket client asks for through ``http_proxy``: one request when opened,
            then every byte either way as it passes, so push is measured like polling."""
            arrived = time.time()
            host, _, port_text = self.path.rpartition(":")
            port = int(port_text)
            try:
                upstream = socket.create_connection((host, port), timeout=UPSTREAM_TIMEOUT_S)
            except OSError:
                tally.add(port, "CONNECT", self.path, 0, 0, arrived)
                self._answer(lambda: self.send_error(502))
                return
            tally.add(port, "CONNECT", self.path, 200, 0, arrived)
            self.close_connection = True
            with upstream:
                self._answer(lambda: (self.send_response(200, "Connection established"), self.end_headers()))
                upstream.settimeout(None)
                pipe_until_closed(self.connection, upstream, lambda n: tally.add_bytes(port, n))

    server = ProxyServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


# -- the plane ---------------------------------------------------------------------------------------
def service_cpu_s(plane: controlplane.ControlPlane) -> Dict[str, float]:
    """CPU seconds (user + system) so far of each measured service's processes."""
    tick = os.sysconf("SC_CLK_TCK")
    out: Dict[str, float] = {}
    for name in CPU_SERVICES:
        pidfile = plane.run_dir / (name + ".pid")
        if not pidfile.exists():
            continue
        total = 0.0
        for pid in controlplane.session_members([int(pidfile.read_text())]):
            try:
                fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        out[name] = total
    return out


#: Ten servers (and deployments) at a time: each makes Keystone users, credentials and, with zaqar, tokens;
#: 50 at once made the plane's SQLite Keystone answer "database is locked" and the stack fail.
CREATE_IN_BATCHES = {"batch_create": {"max_batch_size": 10, "pause_time": 0}}


#: Servers per ResourceGroup.  heat-engine answers each metadata read by loading the whole stack that holds
#: the server (every resource of it, to check the stack user's access), so one group of N servers costs
#: heat-engine O(N) per poll and O(N^2) per interval: 200 servers in one group saturated its worker on this
#: machine for both tools.  A fleet is a set of stacks of a few dozen servers, as here; 50 keeps the runs at
#: N = 50 on the same template as before.
SERVERS_PER_GROUP = 50


def fleet_template(transport: str, count: int) -> Dict[str, Any]:
    """One stack: the fleet as groups of SERVERS_PER_GROUP servers, created one group after the other, each
    with its SoftwareDeploymentGroup of one script config; output ``occ`` lists every server's settings."""
    sizes = [min(SERVERS_PER_GROUP, count - start) for start in range(0, count, SERVERS_PER_GROUP)]
    resources: Dict[str, Any] = {"config": {"type": "OS::Heat::SoftwareConfig", "properties": {
        "group": "script", "inputs": [{"name": "rev"}], "config": "#!/bin/sh\necho $rev\n"}}}
    for k, size in enumerate(sizes):
        resources["servers%d" % k] = {
            "type": "OS::Heat::ResourceGroup", "properties": {
                "count": size,
                "resource_def": {"type": "OS::Heat::DeployedServer",
                                 "properties": {"software_config_transport": transport}}},
            "update_policy": CREATE_IN_BATCHES, "depends_on": ["servers%d" % (k - 1)] if k else []}
        resources["deployments%d" % k] = {
            "type": "OS::Heat::SoftwareDeploymentGroup", "properties": {
                "config": {"get_resource": "config"}, "servers": {"get_attr": ["servers%d" % k, "refs_map"]},
                "signal_transport": "NO_SIGNAL", "input_values": {"rev": {"get_param": "rev"}}},
            "update_policy": CREATE_IN_BATCHES}
    return {
        "heat_template_version": "2021-04-16",
        "parameters": {"rev": {"type": "string", "default": "1"}},
        "resources": resources,
        "outputs": {"occ": {"value": {"list_concat": [
            {"get_attr": ["servers%d" % k, "os_collect_config"]} for k in range(len(sizes))]}}},
    }


def render_conf(settings: Dict[str, Any], collector: str, command: str, interval: float) -> str:
    """The agent's config from its server's os_collect_config, as boot-config renders it (one collector)."""
    lines = ["[DEFAULT]", "collectors = %s" % collector, "command = %s" % command,
             "polling_interval = %g" % interval]
    for section, values in settings.items():
        if not isinstance(values, dict):
            continue
        lines.append("[%s]" % section)
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append("%s = %s" % (key, str(item).lower() if isinstance(item, bool) else item))
    return "\n".join(lines) + "\n"


class Fleet:
    """N agents of one tool, each with its own cache dir and config, traffic through the proxy."""

    def __init__(self, exe: str, work: Path, confs: List[str], proxy_port: int) -> None:
        self.exe, self.work, self.procs = exe, work, []  # type: ignore[var-annotated]
        self.runs: List[Path] = []
        env = clean_env(str(work))
        env.update({"http_proxy": "http://127.0.0.1:%d" % proxy_port, "HTTP_PROXY": "http://127.0.0.1:%d" % proxy_port,
                    "no_proxy": "", "NO_PROXY": ""})
        self.env = env
        for i, conf in enumerate(confs):
            base = self.base(i)
            (base / "cache").mkdir(parents=True, mode=0o700)
            runs = base / "runs"
            conf = conf.replace("@RUNS@", str(runs))
            (base / "occ.conf").write_text(conf)
            (base / "occ.conf").chmod(0o600)
            self.runs.append(runs)

    def base(self, i: int) -> Path:
        """Agent ``i``'s directory: its cache, config, log and run times."""
        return self.work / ("agent%d" % i)

    def start(self) -> None:
        for i in range(len(self.runs)):
            base = self.base(i)
            argv = [self.exe, "--config-file", str(base / "occ.conf"), "--cachedir", str(base / "cache"),
                    "--backup-cachedir", str(base / "backup")]
            with open(base / "log", "ab") as log:
                self.procs.append(subprocess.Popen(argv, env=self.env, cwd=str(base), stdout=log,
                                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                   start_new_session=True))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def keep_logs(self, dest: Path) -> None:
        """The agents' directories are removed at the end: keep their logs, which say what each agent saw
        (a request given up, a backoff), where the proxy's counts only show what was answered."""
        dest.mkdir(parents=True, exist_ok=True)
        for i in range(len(self.runs)):
            log = self.base(i) / "log"
            if log.exists():
                shutil.copyfile(log, dest / ("agent%d.log" % i))

    def run_times(self, i: int) -> List[float]:
        try:
            return [float(x) for x in self.runs[i].read_text().split()]
        except (OSError, ValueError):
            return []


def pct(xs: List[float], q: float) -> float:
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(args: argparse.Namespace, plane: controlplane.ControlPlane, heat: controlplane.Heat,
            tally: Tally, proxy_port: int, tool: str, exe: str, transport: str, work: Path) -> Dict[str, Any]:
    sw_transport, collector, image_settings = TRANSPORTS[transport]
    name = "fleet-%s-%s-%d" % (transport, tool.split()[0], time.time())
    template = fleet_template(sw_transport, args.agents)
    create_mins = 30
    stack_id = heat.create_stack(name, template, timeout_mins=create_mins)
    # As long as Heat's own timeout: at N = 200 on zaqar (a user, a queue and a token per server) a create
    # that overlapped the previous stack's delete took more than 15 minutes.
    stack = heat.wait(name, stack_id, timeout=create_mins * 60 + 60, poll=3)
    if stack["stack_status"] != "CREATE_COMPLETE":
        raise RuntimeError("%s: %s %s" % (name, stack["stack_status"], stack.get("stack_status_reason")))
    settings = {o["output_key"]: o.get("output_value") for o in stack.get("outputs", [])}["occ"]
    command = "date +%s.%N >> @RUNS@"
    for server in settings:
        for section, values in image_settings.items():
            server.setdefault(section, {}).update(values)
    confs = [render_conf(s, collector, command, args.interval) for s in settings]
    fleet = Fleet(exe, work / name, confs, proxy_port)
    result: Dict[str, Any] = {"tool": tool, "transport": transport, "agents": args.agents}
    try:
        fleet.start()
        deadline = time.monotonic() + 300
        while not all(fleet.run_times(i) for i in range(args.agents)) and time.monotonic() < deadline:
            time.sleep(1)
        result["started"] = sum(1 for i in range(args.agents) if fleet.run_times(i))
        # Past the ramp after the first run and the one sleep that draws each agent's phase (it costs
        # every agent one poll): the idle window sees only the steady cadence.
        time.sleep(2 * args.interval)
        # idle window
        cpu0 = service_cpu_s(plane)
        tally.reset()
        time.sleep(args.idle_s)
        cpu1 = service_cpu_s(plane)
        hours = args.agents * args.idle_s / 3600.0
        result["per_agent_hour"] = {
            "requests": {k: v / hours for k, v in tally.requests.items()},
            "requests_by_kind": {k: {kind: n / hours for kind, n in v.items()} for k, v in tally.kinds.items()},
            "bytes": {k: v / hours for k, v in tally.bytes.items()},
            "tokens": tally.tokens / hours,
            "cpu_s": {k: (cpu1[k] - cpu0.get(k, 0.0)) / hours for k in cpu1},
        }
        try:
            # reaction
            updated = time.time()
            heat.update_stack(name, stack_id, template, {"rev": "2"})
            deadline = time.monotonic() + args.interval * 4 + 300
            after = lambda i: [t for t in fleet.run_times(i) if t > updated]  # noqa: E731
            while not all(after(i) for i in range(args.agents)) and time.monotonic() < deadline:
                time.sleep(1)
            delays = [after(i)[0] - updated for i in range(args.agents) if after(i)]
            result["reaction_s"] = {"p50": pct(delays, 0.5), "p95": pct(delays, 0.95), "reached": len(delays)}
            heat.wait(name, stack_id, timeout=300, poll=3)
            # herd
            if transport == "heat" and args.herd_outage_s > 0:
                time.sleep(args.interval)
                tally.reset()
                t0 = time.time()
                time.sleep(args.interval * 2)
                plane.stop_service("heat-api")
                time.sleep(args.herd_outage_s)
                plane.start_service("heat-api", plane.info()["ports"]["heat"])
                back = time.time()
                time.sleep(max(args.interval * 4, 60))
                times = list(tally.times.get("heat-api", []))
                result["herd"] = {"t0": t0, "outage": [back - args.herd_outage_s - t0, back - t0],
                                  "per_second": per_second(times, t0, time.time())}
        except (controlplane.ApiError, OSError) as exc:
            # A plane the fleet overwhelms (Keystone saturated by a token per poll) times out the bench's
            # own calls: the figures measured so far are kept, and the report says what failed.
            result["failed"] = "%s: %s" % ("after the reaction" if "reaction_s" in result else "stack UPDATE", exc)
    finally:
        fleet.stop()
        fleet.keep_logs(Path(args.out) / "agent-logs" / name)
        try:
            heat.delete_stack(name, stack_id)
        except (controlplane.ApiError, OSError) as exc:
            print("%s: not deleted (%s)" % (name, exc), file=sys.stderr)
    return result


def per_second(times: List[float], start: float, end: float) -> List[int]:
    counts = [0] * (int(end - start) + 1)
    for t in times:
        if start <= t <= end:
            counts[int(t - start)] += 1
    return counts


def herd_figures(per_sec: List[int], outage: List[float], bin_s: int) -> Tuple[float, int, int]:
    """(mean and peak requests per ``bin_s`` before the outage, peak per ``bin_s`` after it).

    The steady window's own peak is the yardstick as much as its mean: at a few requests per
    second, chance alone makes one-second peaks of two or three times the mean.
    """
    def binned(counts: List[int]) -> List[int]:
        return [sum(counts[i:i + bin_s]) for i in range(0, len(counts) - bin_s + 1, bin_s)] or [sum(counts)]

    before = binned(per_sec[:max(1, int(outage[0]))])
    after = binned(per_sec[int(outage[1]):])
    return sum(before) / len(before), max(before), max(after)


def first_interval_rate(per_sec: List[int], outage: List[float], interval: float) -> Tuple[float, float]:
    """(mean requests per second before the outage, mean over the first ``interval`` after it).

    The peak of a few bins is mostly chance at this N; what a fleet adds after a restart on
    purpose (every agent polling once more, say) shows in the mean over one whole interval.
    """
    before = per_sec[:max(1, int(outage[0]))]
    after = per_sec[int(outage[1]):int(outage[1] + interval)] or [0]
    return sum(before) / len(before), sum(after) / len(after)


def plot_herd(results: List[Dict[str, Any]], out: Path) -> str:
    rows = [r for r in results if r.get("herd")]
    if not rows:
        return "no herd measured (the heat transport only, with --herd-outage-s > 0)"
    with open(out / "herd.csv", "w") as f:
        f.write("tool,second,requests\n")
        for r in rows:
            for s, n in enumerate(r["herd"]["per_second"]):
                f.write("%s,%d,%d\n" % (r["tool"], s, n))
    try:
        import matplotlib  # bench-only dependency
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ("matplotlib not installed (pip install -e '.[bench]'): herd written to %s" % (out / "herd.csv"))
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in rows:
        ax.plot(range(len(r["herd"]["per_second"])), r["herd"]["per_second"], label=r["tool"], linewidth=0.8)
        ax.axvspan(*r["herd"]["outage"], color="grey", alpha=0.15)
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests/s at heat-api")
    ax.set_title("heat-api stopped, then started: %d agents" % rows[0]["agents"])
    ax.legend()
    fig.savefig(out / "herd.png", dpi=100, bbox_inches="tight")
    return str(out / "herd.png")


def cost_ms(cpu_s: float, count: float) -> float:
    """CPU milliseconds per unit of ``count`` (requests, tokens) in the idle window; nan when there were none."""
    return 1000 * cpu_s / count if count else float("nan")


def report(results: List[Dict[str, Any]], interval: float) -> None:
    by = {(r["transport"], r["tool"]): r for r in results}
    tools = sorted({r["tool"] for r in results}, key=lambda t: t == "ours")  # originals first, ours last
    print("\nPer agent-hour (polling interval %gs)" % interval)
    print("%-9s %-28s %16s %14s %12s" % ("transport", "figure", tools[0], tools[-1] if len(tools) > 1 else "",
                                        "ours/orig"))
    for transport in TRANSPORTS:
        rs = [by[(transport, t)] for t in tools if (transport, t) in by]
        if len(rs) != len(tools):
            continue
        services = sorted({s for r in rs for s in r["per_agent_hour"]["requests"]})
        rows: List[Tuple[str, List[float]]] = []
        for s in services:
            rows.append(("requests " + s, [r["per_agent_hour"]["requests"].get(s, 0.0) for r in rs]))
            by_kind = [r["per_agent_hour"].get("requests_by_kind", {}).get(s, {}) for r in rs]
            for kind in sorted({kind for k in by_kind for kind in k}):
                rows.append(("  %s" % kind, [k.get(kind, 0.0) for k in by_kind]))
            rows.append(("KiB " + s, [r["per_agent_hour"]["bytes"].get(s, 0.0) / 1024 for r in rs]))
        rows.append(("agents run within 300 s", [r["started"] for r in rs]))
        rows.append(("keystone tokens", [r["per_agent_hour"]["tokens"] for r in rs]))
        for s in sorted({s for r in rs for s in r["per_agent_hour"]["cpu_s"]}):
            rows.append(("cpu s " + s, [r["per_agent_hour"]["cpu_s"].get(s, 0.0) for r in rs]))
        # What one request costs the service: the c_* parameters of FLEET.md's model.
        hours = [r["per_agent_hour"] for r in rs]
        for s in services:
            rows.append(("cpu ms/request " + s, [cost_ms(h["cpu_s"].get(s, 0.0), h["requests"].get(s, 0.0))
                                                 for h in hours]))
        rows.append(("cpu ms/token keystone", [cost_ms(h["cpu_s"].get("keystone", 0.0), h["tokens"]) for h in hours]))
        for q in ("p50", "p95"):
            rows.append(("reaction %s s" % q, [r.get("reaction_s", {}).get(q, float("nan")) for r in rs]))
        for label, vals in rows:
            ratio = "%.2f" % (vals[-1] / vals[0]) if len(vals) > 1 and vals[0] else "-"
            print("%-9s %-28s %16.1f %14.1f %12s" % (transport, label, vals[0], vals[-1], ratio))
    for r in results:
        if r.get("failed"):
            print("%s %-16s failed: %s" % (r["transport"], r["tool"], r["failed"]))
    for r in results:
        if not r.get("herd"):
            continue
        for bin_s in (1, 5):
            mean, steady_peak, peak = herd_figures(r["herd"]["per_second"], r["herd"]["outage"], bin_s)
            print("herd %-16s per %d s: steady mean %.2f, steady peak %d; peak after restart %d (%.1fx the mean, "
                  "%.1fx the steady peak)" % (r["tool"], bin_s, mean, steady_peak, peak,
                                              peak / mean if mean else float("nan"),
                                              peak / steady_peak if steady_peak else float("nan")))
        steady, first = first_interval_rate(r["herd"]["per_second"], r["herd"]["outage"], interval)
        print("herd %-16s first %g s after restart: %.2f requests/s against a steady %.2f (%.2fx)"
              % (r["tool"], interval, first, steady, first / steady if steady else float("nan")))


def keep_plane_logs(plane: controlplane.ControlPlane, out: Path) -> None:
    """The plane's directory is removed at the end: keep its logs, which say why a stack or service failed."""
    shutil.copytree(plane.log_dir, out / "plane-logs", dirs_exist_ok=True)
    print("the control plane's logs: %s" % (out / "plane-logs"), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=10, help="agents (and servers) per stack")
    parser.add_argument("--transports", default=",".join(TRANSPORTS),
                        help="comma-separated, run in this order: %s" % ", ".join(TRANSPORTS))
    parser.add_argument("--tools", default="original,ours",
                        help="comma-separated, measured in this order: original, ours")
    parser.add_argument("--interval", type=float, default=30.0, help="polling_interval of every agent")
    parser.add_argument("--idle-s", type=float, default=300.0,
                        help="length of the idle measurement window; a multiple of 300 s holds whole rounds of "
                             "heat-api's and Zaqar's token validations (keystonemiddleware caches each for 300 s)")
    parser.add_argument("--herd-outage-s", type=float, default=120.0, help="heat-api outage (0: no herd run)")
    parser.add_argument("--out", default=str(REPO / "bench" / "fleet-results"),
                        help="directory for fleet.json (rewritten after each stack), herd.csv and herd.png")
    parser.add_argument("--access-logs", action="store_true",
                        help="log every API request with its duration and keep the plane's logs under "
                             "OUT/plane-logs (to find where a slow request waited)")
    args = parser.parse_args()
    # A bench stopped with kill (it runs for an hour, often in the background) stops its agents and its plane
    # on the way out, as it does on ^C, instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    original, ours = ensure_venvs()
    exes = {"original 14.1.0": original, "ours": ours}
    tools = [t for name in args.tools.split(",") for t in exes if t.split()[0] == name]
    controlplane.ensure_venv()
    state = Path(tempfile.mkdtemp(prefix="oca-fleet-"))
    plane = controlplane.ControlPlane(state / "plane", access_logs=args.access_logs)
    results: List[Dict[str, Any]] = []
    try:
        info = plane.start()
        heat = controlplane.Heat(info)
        ports = info["ports"]
        tally = Tally({ports[p]: s for s, p in SERVICE_PORTS.items()})
        proxy, proxy_port = start_proxy(tally)
        # The plane's own idle CPU, subtracted from nothing but printed for reference.
        cpu0 = service_cpu_s(plane)
        time.sleep(min(args.idle_s, 60))
        cpu1 = service_cpu_s(plane)
        idle = {k: (cpu1[k] - cpu0.get(k, 0.0)) * 3600 / min(args.idle_s, 60) for k in cpu1}
        print("plane idle CPU s per hour (no agents): %s" % json.dumps({k: round(v, 1) for k, v in idle.items()}))
        for transport in args.transports.split(","):
            for tool in tools:
                print("== %s, %s, %d agents" % (transport, tool, args.agents), flush=True)
                results.append(measure(args, plane, heat, tally, proxy_port, tool, exes[tool], transport,
                                       state / "agents"))
                (out / "fleet.json").write_text(json.dumps({"idle_cpu_s_per_hour": idle, "results": results},
                                                           indent=1))
        proxy.shutdown()
        if args.access_logs or any(r.get("failed") for r in results):
            keep_plane_logs(plane, out)
    except BaseException:
        keep_plane_logs(plane, out)
        raise
    finally:
        plane.stop()
        shutil.rmtree(state, ignore_errors=True)
    report(results, args.interval)
    print(plot_herd(results, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real container engine for the tests: Debian's dockerd, started by hand, private to one test run.

No registry can be reached and no systemd runs here, so the engine is started the
way the issue found to work on Debian 12: ``dockerd`` with its data root, exec root,
socket, pidfile and config in a short temporary directory (a unix socket path has
a ~108-byte limit), inside its own network namespace (``ip netns add`` + ``nsenter
--net``: ``ip netns exec`` would hide the cgroup mounts) so that its bridge and
iptables rules never touch the host.  Where a namespace cannot be made, it runs in
the host namespace with ``--bridge=none --iptables=false`` and compose services
must use ``network_mode: none`` or ``host`` (``DockerEngine.compose_network_mode``).
The base image is Debian's static busybox, ``docker import``ed (2 MB, < 1 s).

Stopping ends only the PID this module started, then removes what it left: mounts
under its directory, processes still inside its namespace, the namespace itself.

Usage: ``pytest_plugins = ("tests.support.docker_engine",)`` gives the session fixture
``docker_engine``; other code can call ``start_engine()`` / ``DockerEngine.stop()``.
If the engine truly cannot start, tests using the fixture are skipped with the
reason (the dockerd log tail) printed.
"""
from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import pytest

#: Environment variable naming another dockerd binary (the skip path is tested with one that cannot start).
DOCKERD_ENV = "OCA_TEST_DOCKERD"
#: Tag of the busybox base image every engine gets.
BASE_IMAGE = "oca-busybox:latest"
_BUSYBOX = "/bin/busybox"
_READY_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 30.0


class EngineUnavailable(Exception):
    """The engine cannot run on this machine; the message says why."""


@dataclass
class DockerEngine:
    root: str
    process: Optional[subprocess.Popen]
    netns: Optional[str]
    base_image: str = BASE_IMAGE

    @property
    def pid(self) -> int:
        """dockerd's PID (nsenter execs it in place: no fork for a network namespace); 0 once stopped."""
        return self.process.pid if self.process else 0

    @property
    def socket(self) -> str:
        return os.path.join(self.root, "s")

    @property
    def host(self) -> str:
        """The value for DOCKER_HOST."""
        return "unix://" + self.socket

    @property
    def compose_network_mode(self) -> Optional[str]:
        """None when services may use compose's default bridge network; else the mode they must use."""
        return None if self.netns else "none"

    def env(self, base: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """``base`` (default: this process's environment) pointed at this engine."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        return env

    def docker(self, *args: str, check: bool = True, timeout: float = 120, input: Optional[bytes] = None
               ) -> subprocess.CompletedProcess:
        """Run the docker CLI against this engine; output is text unless ``input`` bytes are given."""
        proc = subprocess.run(
            [_docker_cli(), *args], env=self.env(), capture_output=True, timeout=timeout, input=input,
        )
        if check and proc.returncode:
            raise RuntimeError("docker %s failed (%d): %s" % (" ".join(args), proc.returncode,
                                                              proc.stderr.decode("utf-8", "replace")))
        return proc

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.root, "dockerd.log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def remove_containers(self, *filters: str) -> None:
        """Force-remove the containers matching every ``docker ps`` filter given (``label=k=v``; none: all)."""
        args = ["ps", "-aq"] + [arg for f in filters for arg in ("--filter", f)]
        ids = self.docker(*args, check=False, timeout=30).stdout.split()
        if ids:
            self.docker("rm", "-f", *[i.decode() for i in ids], check=False, timeout=60)

    def _remove_containers(self) -> None:
        """Force-remove what tests left running: dockerd would give each one 10 s to stop."""
        try:
            self.remove_containers()
        except (EngineUnavailable, subprocess.SubprocessError, OSError):
            pass

    def stop(self) -> None:
        """Stop our dockerd (by its PID only) and remove every trace of it."""
        if self.process:
            self._remove_containers()
            _terminate(self.process)
            self.process = None
        _umount_below(self.root)
        if self.netns:
            _kill_netns_pids(self.netns)
            subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
            self.netns = None
        shutil.rmtree(self.root, ignore_errors=True)


def _docker_cli() -> str:
    cli = shutil.which("docker")
    if not cli:
        raise EngineUnavailable("no docker CLI on PATH (Debian package docker.io)")
    return cli


def _terminate(process: subprocess.Popen) -> None:
    """SIGTERM our dockerd, wait for it to stop its containers and containerd, SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _mount_points() -> List[str]:
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            points.append(point)
    return points


def _umount_below(root: str) -> None:
    """Lazily unmount whatever the engine left mounted under ``root`` (deepest first)."""
    prefix = root.rstrip("/") + "/"
    for point in sorted((p for p in _mount_points() if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _kill_netns_pids(netns: str) -> None:
    """Processes still in our private namespace (container shims, containers) are ours: end them."""
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    for pid in (int(p) for p in out.split() if p.isdigit()):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ping(sock_path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = s.recv(64).split(b"\r\n", 1)[0]
            return status_line.startswith(b"HTTP/1.") and b" 200" in status_line
    except OSError:
        return False


def _make_netns(name: str) -> bool:
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    if made.returncode:
        return False
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], capture_output=True)
    return True


def _busybox_tar() -> bytes:
    """A root filesystem holding static busybox and one symlink per applet, as a tar stream."""
    if not os.path.exists(_BUSYBOX):
        raise EngineUnavailable("%s missing (Debian package busybox-static)" % _BUSYBOX)
    applets = subprocess.run([_BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(_BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet == "busybox":
                continue
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        passwd = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


def start_engine() -> DockerEngine:
    """Start a private dockerd and import the busybox base image; raise EngineUnavailable if it cannot run.

    A private network namespace is tried first; if the engine cannot start there it
    is tried once more in the host namespace without bridge or iptables.
    """
    if os.geteuid() != 0:
        raise EngineUnavailable("dockerd needs root")
    dockerd = (os.environ.get(DOCKERD_ENV) or shutil.which("dockerd")
               or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None))
    if not dockerd:
        raise EngineUnavailable("no dockerd (Debian package docker.io)")
    _docker_cli()
    reasons = []
    for private_net in (True, False):
        try:
            return _start(dockerd, private_net)
        except EngineUnavailable as exc:
            reasons.append("%s: %s" % ("in its own network namespace" if private_net else "in the host namespace", exc))
    raise EngineUnavailable("\n".join(reasons))


def _start(dockerd: str, private_net: bool) -> DockerEngine:
    root = tempfile.mkdtemp(prefix="oca-", dir="/tmp")  # short: the socket path must fit sun_path
    tag = "oca%d%s" % (os.getpid(), os.urandom(3).hex())  # netns and containerd names: [A-Za-z0-9] only
    netns: Optional[str] = None
    if private_net:
        if not (shutil.which("nsenter") and shutil.which("ip") and _make_netns(tag)):
            shutil.rmtree(root, ignore_errors=True)
            raise EngineUnavailable("cannot make a network namespace (ip netns add, nsenter)")
        netns = tag
    with open(os.path.join(root, "daemon.json"), "w") as f:
        json.dump({}, f)  # never the host's /etc/docker/daemon.json
    argv = [
        dockerd,
        "--data-root", os.path.join(root, "d"),
        "--exec-root", os.path.join(root, "x"),
        "--pidfile", os.path.join(root, "pid"),
        "--config-file", os.path.join(root, "daemon.json"),
        "-H", "unix://" + os.path.join(root, "s"),
        # A containerd the host may run is shared only under names that are ours.
        "--containerd-namespace", tag,
        "--containerd-plugins-namespace", tag + "-p",
        "--shutdown-timeout", "1",  # containers left running must not hold up the end of the run
    ]
    if netns:
        argv = ["nsenter", "--net=/run/netns/" + netns, *argv]
    else:
        argv += ["--bridge=none", "--iptables=false", "--ip-masq=false"]
    log = open(os.path.join(root, "dockerd.log"), "wb")
    try:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    finally:
        log.close()
    engine = DockerEngine(root=root, process=child, netns=netns)
    atexit.register(engine.stop)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while not _ping(engine.socket):
        if child.poll() is not None or time.monotonic() > deadline:
            reason = "dockerd did not become ready (exit %s); last log lines:\n%s" % (child.poll(), engine.log_tail())
            engine.stop()
            raise EngineUnavailable(reason)
        time.sleep(0.05)
    try:
        engine.docker("import", "--change", 'CMD ["/bin/sh"]', "-", BASE_IMAGE, input=_busybox_tar())
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        engine.stop()
        raise EngineUnavailable("cannot import the busybox base image: %s" % exc) from exc
    return engine


@pytest.fixture(scope="session")
def docker_engine():
    """One private engine for the whole test run; tests that need it are skipped, reason printed, if it cannot run."""
    try:
        engine = start_engine()
    except EngineUnavailable as exc:
        pytest.skip("container engine unavailable: %s" % exc)
    try:
        yield engine
    finally:
        engine.stop()

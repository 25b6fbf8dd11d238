"""A real virtual machine under QEMU, booted from a built image, whose network reaches only this host's loopback.

QEMU runs with user networking and ``restrict=on``: the guest reaches nothing but the ``guestfwd`` rules,
one per control plane port, each connecting to that port on this host's 127.0.0.1 (a ``socat`` per
connection). Inside the guest the test image's oca-vm-harness element forwards the same ports from the
guest's own loopback, so the ``127.0.0.1`` URLs the control plane advertises work unchanged.

The first serial port is the console, kept in a file; the second is a root shell (oca-console.service)
that ``Guest.sh`` drives over a UNIX socket to read the guest's own state. The guest's disk is a qcow2
overlay on the built image, so every scenario starts from the image as built and the image is reused.
Only the QEMU process this object started is ever signalled, by its PID.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from tests.support.wait import WaitTimeout, wait_for

#: The address inside QEMU's user network that the guestfwd rules answer on (the harness forwards to it).
FORWARD_HOST = "10.0.2.100"
GUEST_MEMORY_MB = 1024


def accelerator() -> str:
    """TCG: KVM answers here but does not boot a Linux guest (the kernel stops after SeaBIOS's EDD probe)."""
    return os.environ.get("OCA_VM_ACCEL", "tcg")


def make_config_drive(path: Path, files: Dict[str, Any]) -> Path:
    """An ISO 9660 volume labelled ``config-2`` holding ``files`` (relative path -> text or JSON value)."""
    tree = path.with_suffix(".d")
    shutil.rmtree(tree, ignore_errors=True)
    for rel, content in files.items():
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content if isinstance(content, str) else json.dumps(content))
    subprocess.run(["genisoimage", "-quiet", "-o", str(path), "-V", "config-2", "-r", "-J", str(tree)],
                   check=True, timeout=60)
    shutil.rmtree(tree)
    return path


def nova_config_drive(path: Path, name: str, forward_ports: Sequence[int], *,
                      occ_settings: Optional[Dict[str, Any]] = None, user_data: Optional[str] = None) -> Path:
    """What Nova's config drive gives a server, with Heat's os-collect-config settings or user-data for it.

    ``occ_settings`` go where os-collect-config's ec2 collector reads them on an image with our agents:
    ``ec2/latest/meta-data.json`` of a ``config-2`` drive (SPEC §2.8.3), whose ``os-collect-config`` key
    the image's os-apply-config template renders /etc/os-collect-config.conf from. ``user_data`` is what
    cloud-init runs on an image without them. ``oca-test/`` is the harness's forwarding list.
    """
    instance = str(uuid.uuid4())
    ec2: Dict[str, Any] = {"instance-id": instance, "hostname": name, "local-hostname": name}
    if occ_settings is not None:
        ec2["os-collect-config"] = occ_settings
    files: Dict[str, Any] = {
        "openstack/latest/meta_data.json": {"uuid": instance, "name": name, "hostname": name},
        "ec2/latest/meta-data.json": ec2,
        "oca-test/forward-ports": " ".join(str(p) for p in forward_ports) + "\n",
        "oca-test/forward-host": FORWARD_HOST + "\n",
    }
    if user_data is not None:
        files["openstack/latest/user_data"] = user_data
    return make_config_drive(path, files)


class GuestShell:
    """The root shell on the guest's second serial port: run a command, get its exit status and output."""

    def __init__(self, sock_path: Path):
        self.sock_path = sock_path
        self.sock: Optional[socket.socket] = None
        self.buffer = b""

    def connect(self) -> None:
        self.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self.sock_path))
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read_until(self, pattern: "re.Pattern[bytes]", timeout: float) -> "re.Match[bytes]":
        assert self.sock is not None
        deadline = time.monotonic() + timeout
        while True:
            found = pattern.search(self.buffer)
            if found:
                self.buffer = self.buffer[found.end():]
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout("the guest shell gave no answer in %.0f s; last output: %r"
                                  % (timeout, self.buffer[-500:]))
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise ConnectionError("the guest's serial shell closed")
            self.buffer += chunk

    def run(self, command: str, timeout: float = 120) -> Tuple[int, str]:
        """Run ``command`` (one shell line) in the guest: (exit status, output without the echo)."""
        if self.sock is None:
            self.connect()
        assert self.sock is not None
        token = uuid.uuid4().hex[:12]
        # stty first: the shell's tty echoes and maps newlines until told not to (idempotent, cheap).
        # The output is read between two markers that only the shell's echo commands can print: the
        # tty's echo of the line shows them with their quotes and "$?" unexpanded, however the terminal
        # wraps or redraws it.
        line = 'stty -echo -onlcr 2>/dev/null; echo "__OCA_""%s__"; %s; echo "__OCA_$?_%s__"\n' % (
            token, command, token)
        self.sock.sendall(line.encode())
        found = self._read_until(re.compile(rb"(?s)__OCA_" + token.encode() + rb"__\r?\n(.*?)__OCA_(\d+)_"
                                            + token.encode() + rb"__\r?\n"), timeout)
        output = found.group(1).decode(errors="replace").replace("\r", "")
        return int(found.group(2)), output

    def ready(self) -> bool:
        """True once the shell answers (the guest has booted far enough to start oca-console)."""
        try:
            return self.run("true", timeout=5)[0] == 0
        except (OSError, WaitTimeout, ConnectionError):
            self.close()
            return False


class Guest:
    """One virtual machine: a disk (overlay on the image), a config drive, QEMU, its console and shell."""

    def __init__(self, workdir: Path, image: Path, config_drive: Path, forward_ports: Sequence[int]):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.disk = workdir / "disk.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image), str(self.disk)],
                       check=True, timeout=60)
        self.config_drive = config_drive
        self.forward_ports = list(forward_ports)
        self.console_log = workdir / "console.log"
        self.shell = GuestShell(workdir / "shell.sock")
        self.proc: Optional[subprocess.Popen] = None
        self.boots = 0

    def argv(self) -> List[str]:
        forwards = ",".join("guestfwd=tcp:%s:%d-cmd:socat - TCP:127.0.0.1:%d" % (FORWARD_HOST, port, port)
                            for port in self.forward_ports)
        return [
            "qemu-system-x86_64", "-accel", accelerator(), "-machine", "pc", "-m", str(GUEST_MEMORY_MB),
            "-smp", "1", "-display", "none", "-monitor", "none", "-nodefaults",
            "-chardev", "file,id=console,path=%s,append=on" % self.console_log,
            "-serial", "chardev:console",
            "-chardev", "socket,id=shell,path=%s,server=on,wait=off" % self.shell.sock_path,
            "-serial", "chardev:shell",
            "-drive", "file=%s,if=virtio,format=qcow2,cache=writeback" % self.disk,
            "-drive", "file=%s,if=virtio,format=raw,readonly=on" % self.config_drive,
            "-netdev", "user,id=net0,restrict=on,net=10.0.2.0/24" + ("," + forwards if forwards else ""),
            "-device", "virtio-net-pci,netdev=net0",
        ]

    def power_on(self) -> float:
        """Start QEMU; returns the monotonic time of power-on."""
        assert self.proc is None or self.proc.poll() is not None, "the guest is already running"
        self.boots += 1
        with open(self.console_log, "ab") as log:
            log.write(b"\n=== power on %d ===\n" % self.boots)
        self.shell.close()
        started = time.monotonic()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "qemu.stderr", "ab"), start_new_session=True)
        return started

    def wait_booted(self, timeout: float = 300) -> None:
        """Until the harness shell answers: systemd has reached the services of multi-user.target."""
        def answered() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError("QEMU exited (%s):\n%s\nconsole tail:\n%s" % (
                    self.proc.returncode if self.proc else None,
                    (self.workdir / "qemu.stderr").read_text(errors="replace")[-2000:], self.console()[-4000:]))
            return self.shell.sock_path.exists() and self.shell.ready()
        try:
            wait_for(answered, timeout, "the guest to boot (boot %d)" % self.boots, interval=2)
        except WaitTimeout as exc:
            raise AssertionError("%s; console tail:\n%s" % (exc, self.console()[-6000:])) from None

    def sh(self, command: str, timeout: float = 120) -> str:
        """Run ``command`` in the guest and return its output; a non-zero exit fails the test."""
        status, output = self.shell.run(command, timeout)
        assert status == 0, "in the guest, %r exited %d:\n%s" % (command, status, output[-4000:])
        return output

    def power_cut(self) -> None:
        """SIGKILL to QEMU: the guest loses power with whatever was in flight."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.shell.close()

    def reboot(self) -> float:
        """``systemctl reboot`` in the guest; returns when the rebooted guest answers, with the time it took."""
        started = time.monotonic()
        before = self.console().count("Linux version")
        # --no-block: the shell answers before it goes down (QEMU drops what the guest has not read yet).
        self.sh("systemctl --no-block reboot")
        self.shell.close()
        wait_for(lambda: self.console().count("Linux version") > before, 180,
                 "the guest's kernel to start again after the reboot", interval=1)
        self.wait_booted()
        return time.monotonic() - started

    def stop(self) -> None:
        """Power off: a clean shutdown when the shell answers, else a power cut."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            if self.shell.sock is not None:
                self.shell.run("systemctl --no-block poweroff", timeout=30)
                self.proc.wait(timeout=60)
        except (OSError, WaitTimeout, ConnectionError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.power_cut()
        self.shell.close()

    def console(self) -> str:
        return self.console_log.read_text(errors="replace") if self.console_log.exists() else ""

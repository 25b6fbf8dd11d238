#!/usr/bin/env python3
"""A real Keystone + Heat control plane on 127.0.0.1, for the end-to-end suite and for developers.

    python tests/e2e/controlplane.py setup                  create/refresh the pinned virtualenv (cached)
    python tests/e2e/controlplane.py start [--state-dir D]  start every service below (prints each step's time)
    python tests/e2e/controlplane.py check [--state-dir D]  create and delete a trivial stack (CREATE_COMPLETE)
    python tests/e2e/controlplane.py env   [--state-dir D]  print shell exports for the openstack/heat CLIs
    python tests/e2e/controlplane.py stop  [--state-dir D]  stop every process started, by the PIDs in D/run

Why it looks like this (facts measured on Debian 12 / Python 3.11):
- Keystone 30.0.0 and openstack-heat 27.0.1 from PyPI, in their own virtualenv (never the project's .venv),
  cached under ~/.cache/os-config-agents/ keyed by the pins, so a second run costs nothing.
- Heat 27 ships no ``heat-all`` and oslo.messaging's ``fake://`` only works inside one process, so the
  three Heat services talk over Debian's rabbitmq-server, run by hand as a child (config, mnesia and logs
  in the state dir; epmd started by us on its own port; the Debian service is never started).
- Keystone and the Heat APIs run under gunicorn ``--no-control-socket`` (else gunicorn shares a control
  socket under $HOME) behind a small WSGI entry point that replaces gunicorn's argv, which Keystone and
  Heat would otherwise parse as their own options.
- The CFN path needs ``[ec2authtoken]`` with full keystoneauth options plus an endpoint override, and a
  policy override letting the stack user call DescribeStackResource (the new policy defaults check it
  against a project the stack user's EC2 token does not carry, and refuse).
- Heat and Keystone keep their databases in a MariaDB server, run by hand as a child like rabbitmq. On
  SQLite, heat-engine's green threads keep transactions open across I/O and SQLite answers "database is
  locked" (measured: about one stack in five failed); Keystone said the same while bench/fleet.py created
  fifty servers' stack users at once.
- Swift (a one-replica SAIO with tempurl and keystone auth) and Zaqar (over a redis-server run by hand)
  are real too, for the POLL_TEMP_URL/TEMP_URL_SIGNAL and ZAQAR_MESSAGE/ZAQAR_SIGNAL transports.
- Zaqar runs twice over the same redis: its WSGI transport (catalog type ``messaging``, what Heat posts
  to; under gunicorn like the APIs, as zaqar-server's own wsgiref server answers one request at a time
  from a backlog of five and resets the rest: fleets of 50 agents made Heat's posts fail) and its
  websocket transport (``messaging-websocket``, a ws:// URL, what os-collect-config's
  ``use_websockets`` reads). A websocket client's subscription is a webhook to the websocket server's
  notification listener, called by whichever server stores a message, so both run the notifier in
  their message pipeline; the listener is bound to 127.0.0.1 (by default it names the host name).
- Heat asks Nova whether a DeployedServer still exists before it waits for a DELETE action's signal; Nova
  cannot run here, so compute_stub.py answers that one call (every server ACTIVE).
- One worker per service: the machine's CPUs are shared.

Standard library only, so that any python3 can run it; the services run from the cached virtualenv.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

#: What the control plane runs; changing a pin makes a new cached virtualenv.
PINS = (
    "keystone==30.0.0",
    "openstack-heat==27.0.1",
    "gunicorn==27.0.1",
    "swift==2.38.3",
    "zaqar[redis]==23.0.1",
    "PyMySQL==1.2.4",
)
CACHE_ROOT = Path(os.environ.get("OCA_E2E_CACHE", str(Path.home() / ".cache" / "os-config-agents")))
DEFAULT_STATE_DIR = Path(os.environ.get("OCA_E2E_STATE", "/tmp/oca-e2e"))
REGION = "RegionOne"
SERVICES = ("epmd", "rabbitmq", "mariadb", "keystone", "redis", "compute-stub", "swift-account",
            "swift-container", "swift-object", "swift-proxy", "zaqar", "zaqar-websocket", "heat-engine", "heat-api",
            "heat-api-cfn")

#: Imported by gunicorn in place of the real app: hides gunicorn's argv from oslo.config.
WSGI_ENTRY = '''\
"""gunicorn entry point: give the service its own argv, then import its WSGI application."""
import importlib, json, os, sys
sys.argv = json.loads(os.environ["OCA_WSGI_ARGV"])
application = importlib.import_module(os.environ["OCA_WSGI_MODULE"]).application
'''

#: Heat policy override for the CFN metadata path (see module docstring).
HEAT_POLICY = (
    '"cloudformation:DescribeStackResource": '
    '"role:heat_stack_user or (role:reader and project_id:%(project_id)s)"\n'
)


# --------------------------------------------------------------------------------------------- venv

def venv_dir() -> Path:
    """The cached virtualenv for these pins (a new one when a pin changes)."""
    digest = hashlib.sha256("\n".join(PINS + (sys.version.split()[0][:4],)).encode()).hexdigest()[:10]
    return Path(os.environ.get("OCA_E2E_VENV", str(CACHE_ROOT / ("e2e-venv-" + digest))))


def ensure_venv(python: Optional[str] = None) -> Tuple[Path, float]:
    """Create the virtualenv once; return it and the seconds spent (0 when it was already complete)."""
    venv = venv_dir()
    done = venv / ".oca-complete"
    if done.exists():
        return venv, 0.0
    started = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    python = python or _base_python()
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *PINS],
        check=True,
    )
    done.write_text("\n".join(PINS) + "\n")
    return venv, time.monotonic() - started


def _base_python() -> str:
    """A real interpreter, not a virtualenv's (a venv made from a venv would link to the wrong site)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


# --------------------------------------------------------------------------------------------- REST

class ApiError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__("%s %s -> %s: %s" % (method, url, status, body[:500]))
        self.status = status
        self.body = body


def rest(method: str, url: str, body: Any = None, token: Optional[str] = None,
         timeout: float = 60, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], Any]:
    """One JSON request (stdlib only); returns (status, headers, decoded body), raises ApiError on >= 400."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
            status, hdrs = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raise ApiError(method, url, exc.code, exc.read().decode(errors="replace")) from None
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw
    return status, hdrs, decoded


def keystone_token(auth_url: str, username: str, password: str, project: str,
                   domain: str = "Default") -> Tuple[str, Dict[str, Any]]:
    """A project-scoped token and its body (catalog included) by password."""
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": username, "password": password, "domain": {"name": domain}}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}},
    }}
    _, hdrs, data = rest("POST", auth_url.rstrip("/") + "/auth/tokens", body)
    token = {k.lower(): v for k, v in hdrs.items()}["x-subject-token"]
    return token, data["token"]


# --------------------------------------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port: int, timeout: float, proc: Optional[subprocess.Popen] = None, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s before listening on %d" % (name, proc.returncode, port))
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("%s did not listen on 127.0.0.1:%d within %ss" % (name, port, timeout))


def wait_http(url: str, timeout: float, proc: Optional[subprocess.Popen] = None, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %s (see its log)" % (name, proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
            last = str(exc)
        except OSError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError("%s not answering at %s within %ss: %s" % (name, url, timeout, last))


def make_key_repository(path: Path) -> None:
    """A Fernet key repository as keystone-manage creates it: key 0 staged, key 1 primary, dir 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for index in ("0", "1"):
        key = path / index
        key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        key.chmod(0o600)


def database_url(ports: Dict[str, int], pw: Dict[str, str], name: str) -> str:
    """The MariaDB database ``name`` (its user has the same name, its password ``pw[name + "_db"]``)."""
    return "mysql+pymysql://%s:%s@127.0.0.1:%d/%s?charset=utf8" % (name, pw[name + "_db"], ports["mariadb"], name)


def write_ini(path: Path, sections: Dict[str, Dict[str, Any]]) -> None:
    lines = []
    for section, opts in sections.items():
        lines.append("[%s]" % section)
        lines.extend("%s = %s" % (k, v) for k, v in opts.items())
        lines.append("")
    path.write_text("\n".join(lines))


# --------------------------------------------------------------------------------------------- the plane

class ControlPlane:
    """Configures, starts and stops the services; everything lives under ``state_dir``."""

    def __init__(self, state_dir: Path, venv: Optional[Path] = None, access_logs: bool = False):
        """``access_logs``: the gunicorn APIs also log each request with its duration (``<name>.access.log``),
        which tells where a slow request waited (the suite's plane and ``bench/fleet.py --access-logs``)."""
        self.dir = Path(state_dir).resolve()
        self.venv = venv or venv_dir()
        self.access_logs = access_logs
        self.info_file = self.dir / "controlplane.json"
        self.run_dir = self.dir / "run"
        self.log_dir = self.dir / "logs"
        self._zaqar_websocket: Optional[subprocess.Popen] = None

    # -- public API -------------------------------------------------------------------------
    def info(self) -> Dict[str, Any]:
        return json.loads(self.info_file.read_text())

    def start(self) -> Dict[str, Any]:
        if self.info_file.exists() and self._alive():
            return self.info()
        for d in (self.dir, self.run_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        ports = {name: free_port() for name in ("epmd", "amqp", "dist", "mariadb", "keystone", "heat", "cfn", "redis",
                                                "swift", "swift-account", "swift-container", "swift-object",
                                                "zaqar", "zaqar-websocket", "zaqar-notification",
                                                "compute")}
        pw = {name: secrets.token_hex(12) for name in ("admin", "heat", "domain_admin", "rabbit", "redis",
                                                       "heat_db", "keystone_db")}
        info: Dict[str, Any] = {
            "state_dir": str(self.dir), "venv": str(self.venv), "region": REGION, "ports": ports,
            "auth_url": "http://127.0.0.1:%d/v3" % ports["keystone"],
            "admin": {"username": "admin", "password": pw["admin"], "project": "admin"},
            "heat_url": "http://127.0.0.1:%d/v1" % ports["heat"],
            "cfn_url": "http://127.0.0.1:%d/v1" % ports["cfn"],
            "swift_url": "http://127.0.0.1:%d" % ports["swift"],
            "zaqar_url": "http://127.0.0.1:%d" % ports["zaqar"],
            "zaqar_websocket_url": "ws://127.0.0.1:%d" % ports["zaqar-websocket"],
        }
        (self.dir / "wsgi").mkdir(exist_ok=True)
        (self.dir / "wsgi" / "oca_wsgi_entry.py").write_text(WSGI_ENTRY)
        self.info_file.write_text(json.dumps(info, indent=1))
        self.info_file.chmod(0o600)
        steps = (
            ("rabbitmq", lambda: self._start_rabbitmq(ports, pw)),
            ("mariadb", lambda: self._start_mariadb(ports, pw)),
            ("keystone", lambda: self._start_keystone(info, ports, pw)),
            ("keystone provisioning", lambda: self._provision_keystone(info, ports, pw)),
            ("swift", lambda: self._start_swift(ports, pw)),
            ("zaqar", lambda: self._start_zaqar(ports, pw)),
            # started with the WSGI one; this step is only what it adds to the start-up
            ("zaqar websocket", lambda: self._wait_zaqar_websocket(ports)),
            ("compute stub", lambda: self._start_compute_stub(ports)),
            ("heat", lambda: self._start_heat(info, ports, pw)),
        )
        info["timings"] = {}
        for name, step in steps:
            t0 = time.monotonic()
            step()
            info["timings"][name] = round(time.monotonic() - t0, 1)
            print("  %-22s %6.1f s" % (name, info["timings"][name]), file=sys.stderr, flush=True)
        self.check_loopback_only()
        self.info_file.write_text(json.dumps(info, indent=1))
        return info

    def check_loopback_only(self) -> None:
        """Fail naming the process and address if any process of the plane listens beyond loopback."""
        leaders = [int(p.read_text()) for p in (self.run_dir / (n + ".pid") for n in SERVICES) if p.exists()]
        exposed = ["%s (pid %d) on %s" % (comm, pid, address)
                   for pid, comm, address in listening_sockets(session_members(leaders))
                   if address.rsplit(":", 1)[0] not in LOOPBACK_ADDRESSES]
        if exposed:
            raise RuntimeError("the control plane listens beyond 127.0.0.1: %s" % "; ".join(exposed))

    def stop(self) -> List[str]:
        """Stop every service whose pidfile we wrote, newest first: SIGTERM, then SIGKILL after 10 s."""
        return [name for name in reversed(SERVICES) if self.stop_service(name)]

    def stop_service(self, name: str) -> bool:
        """Stop one service (and its workers) by the PID in its pidfile; False if it was not running."""
        pidfile = self.run_dir / (name + ".pid")
        if not pidfile.exists():
            return False
        pid = int(pidfile.read_text().strip() or 0)
        stopped = pid > 0 and self._signal_group(pid, signal.SIGTERM)
        if stopped:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _pid_alive(pid):
                time.sleep(0.1)
            if _pid_alive(pid):
                self._signal_group(pid, signal.SIGKILL)
        pidfile.unlink()
        return stopped

    def start_service(self, name: str, port: int) -> None:
        """Start again a service stopped by stop_service, exactly as start() first ran it."""
        spec = json.loads((self.run_dir / (name + ".spawn.json")).read_text())
        proc = self._spawn(name, spec["argv"], spec["env"], Path(spec["cwd"]))
        wait_tcp(port, 60, proc, name)

    def env(self) -> Dict[str, str]:
        info = self.info()
        return {
            "OS_AUTH_URL": info["auth_url"], "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": "admin", "OS_PASSWORD": info["admin"]["password"],
            "OS_PROJECT_NAME": "admin", "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default", "OS_REGION_NAME": REGION,
            "PATH": "%s/bin:%s" % (info["venv"], os.environ.get("PATH", "")),
        }

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: List[str], env: Optional[Dict[str, str]] = None,
               cwd: Optional[Path] = None) -> subprocess.Popen:
        """Start a service in its own session (so stop() can end it and its workers by its PID)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PYTHON"))}
        full_env.update(env or {})
        spec = self.run_dir / (name + ".spawn.json")
        spec.write_text(json.dumps({"argv": argv, "env": env or {}, "cwd": str(cwd or self.dir)}))
        spec.chmod(0o600)
        log = open(self.log_dir / (name + ".log"), "ab")
        proc = subprocess.Popen(argv, env=full_env, cwd=str(cwd or self.dir), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        (self.run_dir / (name + ".pid")).write_text("%d\n" % proc.pid)
        return proc

    def _run(self, name: str, argv: List[str], env: Optional[Dict[str, str]] = None,
             ok: Tuple[int, ...] = (0,)) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PYTHON"))}
        full_env.update(env or {})
        with open(self.log_dir / (name + ".log"), "ab") as log:
            rc = subprocess.run(argv, env=full_env, cwd=str(self.dir), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if rc not in ok:
            raise RuntimeError("%s failed (exit %d); see %s" % (" ".join(argv[:3]), rc,
                                                               self.log_dir / (name + ".log")))

    def _alive(self) -> bool:
        pids = [self.run_dir / (n + ".pid") for n in SERVICES]
        return all(p.exists() and _pid_alive(int(p.read_text())) for p in pids)

    @staticmethod
    def _signal_group(pid: int, sig: int) -> bool:
        try:
            os.killpg(pid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return False

    def _gunicorn(self, name: str, port: int, module: str, argv: List[str],
                  extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        env = {"OCA_WSGI_MODULE": module, "OCA_WSGI_ARGV": json.dumps(argv),
               "PYTHONPATH": str(self.dir / "wsgi")}
        env.update(extra_env or {})
        access = ["--access-logfile", str(self.log_dir / (name + ".access.log")),
                  "--access-logformat", '%(t)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'] if self.access_logs else []
        return self._spawn(name, [
            str(self.venv / "bin" / "gunicorn"), "--no-control-socket",
            "--bind", "127.0.0.1:%d" % port, "--workers", "1", "--threads", "4",
            "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "5",
            "--pid", str(self.run_dir / (name + ".gunicorn.pid")),
        ] + access + ["oca_wsgi_entry:application"], env=env)

    # -- rabbitmq ---------------------------------------------------------------------------
    def _start_rabbitmq(self, ports: Dict[str, int], pw: Dict[str, str]) -> None:
        base = self.dir / "rabbitmq"
        for d in ("mnesia", "log", "home", "plugins-expand"):
            (base / d).mkdir(parents=True, exist_ok=True)
        (base / "home").chmod(0o700)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("# intentionally empty: everything comes from the environment\n")
        (base / "rabbitmq.conf").write_text(
            "listeners.tcp.default = 127.0.0.1:%d\n"
            "loopback_users = none\n"
            "default_user = oca\ndefault_pass = %s\n"
            "disk_free_limit.absolute = 50MB\n" % (ports["amqp"], pw["rabbit"]))
        cookie = base / "home" / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(10))
        cookie.chmod(0o400)
        erl_env = {"HOME": str(base / "home"), "ERL_EPMD_PORT": str(ports["epmd"]),
                   "ERL_EPMD_ADDRESS": "127.0.0.1"}
        epmd = self._spawn("epmd", [shutil.which("epmd") or "/usr/bin/epmd", "-port", str(ports["epmd"]),
                                    "-address", "127.0.0.1"], env=erl_env)
        wait_tcp(ports["epmd"], 20, epmd, "epmd")
        rabbit_env = dict(erl_env)
        rabbit_env.update({
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(base / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(self.run_dir / "rabbitmq.beam.pid"),
            "RABBITMQ_NODENAME": "oca-e2e-%d@localhost" % ports["amqp"],
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(ports["dist"]),
            # the Erlang distribution listener binds every interface unless told otherwise
            "RABBITMQ_SERVER_ERL_ARGS": "+S 1:1 +A 4 -kernel inet_dist_use_interface {127,0,0,1}",
        })
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        if not os.path.exists(server):
            raise RuntimeError("rabbitmq-server is not installed (apt-get install rabbitmq-server; "
                               "scripts/setup does it)")
        proc = self._spawn("rabbitmq", [server], env=rabbit_env, cwd=base)
        wait_tcp(ports["amqp"], 120, proc, "rabbitmq-server")

    # -- mariadb ----------------------------------------------------------------------------
    def _start_mariadb(self, ports: Dict[str, int], pw: Dict[str, str]) -> None:
        """Heat's and Keystone's databases. heat-engine runs its resources in green threads that keep
        transactions open across I/O; on SQLite that ends in "database is locked" and stacks failing at
        random (measured: about one stack in five). Keystone on SQLite, even in WAL mode, said the same
        while bench/fleet.py created 50 servers' users at once. Both get the database they are built for."""
        mdir = self.dir / "mariadb"
        mdir.mkdir(exist_ok=True)
        me = pwd.getpwuid(os.getuid()).pw_name
        for tool in ("/usr/bin/mariadb-install-db", "/usr/sbin/mariadbd", "/usr/bin/mariadb"):
            if not os.path.exists(tool):
                raise RuntimeError("%s is missing (apt-get install mariadb-server; scripts/setup does it)" % tool)
        self._run("mariadb-install-db", ["/usr/bin/mariadb-install-db", "--no-defaults", "--datadir=%s" % (mdir / "data"),
                                         "--user=%s" % me, "--auth-root-authentication-method=normal",
                                         "--skip-test-db", "--skip-name-resolve"])
        sock = mdir / "mysqld.sock"
        proc = self._spawn("mariadb", [
            "/usr/sbin/mariadbd", "--no-defaults", "--datadir=%s" % (mdir / "data"), "--socket=%s" % sock,
            "--port=%d" % ports["mariadb"], "--bind-address=127.0.0.1", "--user=%s" % me,
            "--pid-file=%s" % (mdir / "mariadbd.pid"), "--skip-name-resolve", "--skip-log-bin",
            "--performance-schema=OFF", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300", "--character-set-server=utf8mb4"])
        wait_tcp(ports["mariadb"], 60, proc, "mariadbd")
        self._run("mariadb", ["/usr/bin/mariadb", "--no-defaults", "--socket=%s" % sock, "-uroot", "-e", " ".join(
            "CREATE DATABASE {0} CHARACTER SET utf8mb4; CREATE USER '{0}'@'127.0.0.1' IDENTIFIED BY '{1}'; "
            "GRANT ALL PRIVILEGES ON {0}.* TO '{0}'@'127.0.0.1';".format(name, pw[name + "_db"])
            for name in ("heat", "keystone"))])

    # -- keystone ---------------------------------------------------------------------------
    def _start_keystone(self, info: Dict[str, Any], ports: Dict[str, int], pw: Dict[str, str]) -> None:
        kdir = self.dir / "keystone"
        kdir.mkdir(exist_ok=True)
        conf = kdir / "keystone.conf"
        write_ini(conf, {
            "DEFAULT": {"use_stderr": "true", "debug": "false"},
            "database": {"connection": database_url(ports, pw, "keystone")},
            "token": {"provider": "fernet", "expiration": "86400"},
            "fernet_tokens": {"key_repository": kdir / "fernet-keys"},
            "fernet_receipts": {"key_repository": kdir / "fernet-keys"},
            "credential": {"key_repository": kdir / "credential-keys"},
            # Keystone's cache, in this one worker's memory, as every production Keystone runs it (memcached
            # there): without it a token costs 0.20 CPU s here against 0.013 with it, and a fleet of the
            # originals (a token per poll) saturated a plane no cloud runs (bench/FLEET.md, "Status of the figures")
            "cache": {"enabled": "true", "backend": "dogpile.cache.memory"},
            # bcrypt's minimum cost: every token request hashes a password, on shared CPUs
            "identity": {"password_hash_rounds": "4"},
        })
        manage = [str(self.venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
        self._run("keystone-manage", manage + ["db_sync"])
        for repo in ("fernet-keys", "credential-keys"):  # what fernet_setup/credential_setup write, minus
            make_key_repository(kdir / repo)              # two ~10 s keystone-manage start-ups
        url = info["auth_url"]
        self._run("keystone-manage", manage + [
            "bootstrap", "--bootstrap-password", pw["admin"], "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-service-name", "keystone", "--bootstrap-region-id", REGION,
            "--bootstrap-admin-url", url, "--bootstrap-internal-url", url, "--bootstrap-public-url", url])
        proc = self._gunicorn("keystone", ports["keystone"], "keystone.wsgi.api", ["keystone"],
                              {"OS_KEYSTONE_CONFIG_FILES": str(conf)})
        wait_http(url, 120, proc, "keystone")

    def _provision_keystone(self, info: Dict[str, Any], ports: Dict[str, int], pw: Dict[str, str]) -> None:
        """Service project and user, Heat's stack domain and its admin, roles, catalog entries."""
        url = info["auth_url"]
        token, _ = keystone_token(url, "admin", pw["admin"], "admin")

        def create(kind: str, body: Dict[str, Any]) -> str:
            return rest("POST", "%s/%ss" % (url, kind), {kind: body}, token=token)[2][kind]["id"]

        def grant(target: str, target_id: str, user: str, role_id: str) -> None:
            rest("PUT", "%s/%s/%s/users/%s/roles/%s" % (url, target, target_id, user, role_id), token=token)

        # The database is new: one listing for what bootstrap made, then only creations (each request
        # costs about a second on loaded shared CPUs).
        role = {r["name"]: r["id"] for r in rest("GET", url + "/roles", token=token)[2]["roles"]}
        for name in ("member", "reader", "service", "heat_stack_owner", "heat_stack_user", "ResellerAdmin"):
            if name not in role:
                role[name] = create("role", {"name": name})
        projects = {p["name"]: p["id"] for p in rest("GET", url + "/projects", token=token)[2]["projects"]}
        admin_project = projects["admin"]
        admin_user = rest("GET", url + "/users?name=admin", token=token)[2]["users"][0]["id"]
        service_project = create("project", {"name": "service", "domain_id": "default"})
        heat_user = create("user", {"name": "heat", "domain_id": "default", "password": pw["heat"]})
        for r in ("admin", "service"):
            grant("projects", service_project, heat_user, role[r])
        grant("projects", admin_project, admin_user, role["heat_stack_owner"])
        heat_domain = create("domain", {"name": "heat", "description": "Heat stack users"})
        domain_admin = create("user", {"name": "heat_domain_admin", "domain_id": heat_domain,
                                       "password": pw["domain_admin"]})
        grant("domains", heat_domain, domain_admin, role["admin"])
        for stype, sname, base in (
                ("orchestration", "heat", "http://127.0.0.1:%d/v1/%%(tenant_id)s" % ports["heat"]),
                ("cloudformation", "heat-cfn", "http://127.0.0.1:%d/v1" % ports["cfn"]),
                ("object-store", "swift", "http://127.0.0.1:%d/v1/AUTH_%%(tenant_id)s" % ports["swift"]),
                ("messaging", "zaqar", "http://127.0.0.1:%d" % ports["zaqar"]),
                ("messaging-websocket", "zaqar-websocket", "ws://127.0.0.1:%d" % ports["zaqar-websocket"]),
                ("compute", "nova", "http://127.0.0.1:%d/v2.1" % ports["compute"])):
            sid = create("service", {"type": stype, "name": sname})
            for iface in ("public", "internal"):
                create("endpoint", {"service_id": sid, "interface": iface, "url": base, "region_id": REGION})
        info["admin"]["project_id"] = admin_project
        info["heat_domain_id"] = heat_domain
        self.info_file.write_text(json.dumps(info, indent=1))

    def _service_auth(self, ports: Dict[str, int], pw: Dict[str, str]) -> Dict[str, Any]:
        """keystoneauth options of the `heat` service user, which every service here validates tokens with."""
        ks = "http://127.0.0.1:%d" % ports["keystone"]
        return {"auth_type": "password", "auth_url": ks, "username": "heat", "password": pw["heat"],
                "user_domain_name": "Default", "project_name": "service", "project_domain_name": "Default"}

    # -- swift ------------------------------------------------------------------------------
    def _start_swift(self, ports: Dict[str, int], pw: Dict[str, str]) -> None:
        """A one-replica SAIO: account, container and object servers plus a proxy with tempurl + keystone."""
        sdir = self.dir / "swift"
        (sdir / "node" / "d1").mkdir(parents=True, exist_ok=True)
        write_ini(sdir / "swift.conf", {
            "swift-hash": {"swift_hash_path_suffix": secrets.token_hex(8), "swift_hash_path_prefix": "oca"},
            "storage-policy:0": {"name": "gold", "default": "yes"},
        })
        me = pwd.getpwuid(os.getuid()).pw_name
        common = {"bind_ip": "127.0.0.1", "workers": "0", "swift_dir": sdir, "user": me,
                  "devices": sdir / "node", "mount_check": "false", "log_level": "INFO"}
        builder = str(self.venv / "bin" / "swift-ring-builder")
        for kind in ("account", "container", "object"):
            ring = str(sdir / (kind + ".builder"))
            self._run("swift-rings", [builder, ring, "create", "6", "1", "1"])
            self._run("swift-rings", [builder, ring, "add", "r1z1-127.0.0.1:%d/d1" % ports["swift-" + kind], "1"])
            self._run("swift-rings", [builder, ring, "rebalance"], ok=(0, 1))
            conf = dict(common, bind_port=str(ports["swift-" + kind]))
            write_ini(sdir / ("%s-server.conf" % kind), {
                "DEFAULT": conf, "pipeline:main": {"pipeline": "%s-server" % kind},
                "app:%s-server" % kind: {"use": "egg:swift#%s" % kind},
                "%s-replicator" % kind: {}, "%s-auditor" % kind: {}, "%s-updater" % kind: {},
            })
        auth = self._service_auth(ports, pw)
        authtoken = {"paste.filter_factory": "keystonemiddleware.auth_token:filter_factory",
                     "www_authenticate_uri": auth["auth_url"] + "/v3", "delay_auth_decision": "true"}
        authtoken.update(auth)
        proxy = {
            "DEFAULT": dict(common, bind_port=str(ports["swift"])),
            "pipeline:main": {"pipeline": "catch_errors gatekeeper healthcheck proxy-logging listing_formats "
                                          "tempurl authtoken keystoneauth copy dlo slo proxy-logging proxy-server"},
            "app:proxy-server": {"use": "egg:swift#proxy", "account_autocreate": "true"},
            "filter:authtoken": authtoken,
            "filter:keystoneauth": {"use": "egg:swift#keystoneauth", "operator_roles": "admin, member",
                                    "reseller_admin_role": "ResellerAdmin"},
        }
        for name in ("catch_errors", "gatekeeper", "healthcheck", "proxy-logging", "listing_formats", "tempurl",
                     "copy", "dlo", "slo"):
            proxy["filter:" + name] = {"use": "egg:swift#" + name.replace("-", "_")}
        write_ini(sdir / "proxy-server.conf", proxy)
        procs = {}
        for kind in ("account", "container", "object"):
            procs[kind] = self._spawn("swift-" + kind, [str(self.venv / "bin" / ("swift-%s-server" % kind)),
                                                        str(sdir / ("%s-server.conf" % kind)), "-v"])
        procs["proxy"] = self._spawn("swift-proxy", [str(self.venv / "bin" / "swift-proxy-server"),
                                                     str(sdir / "proxy-server.conf"), "-v"])
        for kind in ("account", "container", "object"):
            wait_tcp(ports["swift-" + kind], 60, procs[kind], "swift-%s-server" % kind)
        wait_http("http://127.0.0.1:%d/healthcheck" % ports["swift"], 60, procs["proxy"], "swift-proxy-server")

    # -- zaqar ------------------------------------------------------------------------------
    def _start_zaqar(self, ports: Dict[str, int], pw: Dict[str, str]) -> None:
        """Zaqar's WSGI and websocket transports over a redis-server we run by hand (see the module docstring).

        The websocket server reads the same file plus one overriding the transport, so the two cannot
        drift apart; both start at once, as neither needs the other to come up."""
        zdir = self.dir / "zaqar"
        # Zaqar's WSGI application reads no argv: only the standard places, of which ~/.zaqar/ is first.
        conf_dir = zdir / "home" / ".zaqar"
        conf_dir.mkdir(parents=True, exist_ok=True)
        redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(redis_server):
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; scripts/setup does it)")
        redis = self._spawn("redis", [redis_server, "--bind", "127.0.0.1", "--port", str(ports["redis"]),
                                      "--dir", str(zdir), "--save", "", "--appendonly", "no",
                                      "--daemonize", "no", "--requirepass", pw["redis"]])
        wait_tcp(ports["redis"], 30, redis, "redis-server")
        auth = self._service_auth(ports, pw)
        uri = "redis://:%s@127.0.0.1:%d" % (pw["redis"], ports["redis"])
        conf = conf_dir / "zaqar.conf"
        write_ini(conf, {
            "DEFAULT": {"auth_strategy": "keystone", "pooling": "false", "unreliable": "true",
                        "use_stderr": "true", "debug": "false"},
            "drivers": {"transport": "wsgi", "message_store": "redis", "management_store": "redis"},
            "drivers:message_store:redis": {"uri": uri},
            "drivers:management_store:redis": {"uri": uri},
            "storage": {"message_pipeline": "zaqar.notification.notifier"},
            "keystone_authtoken": dict(auth, www_authenticate_uri=auth["auth_url"] + "/v3"),
            "signed_url": {"secret_key": secrets.token_hex(16)},
        })
        ws_conf = zdir / "zaqar-websocket.conf"
        write_ini(ws_conf, {
            "drivers": {"transport": "websocket"},
            "drivers:transport:websocket": {
                "bind": "127.0.0.1", "port": str(ports["zaqar-websocket"]),
                "notification_bind": "127.0.0.1", "notification_port": str(ports["zaqar-notification"])},
        })
        proc = self._gunicorn("zaqar", ports["zaqar"], "zaqar.transport.wsgi.app", ["zaqar"],
                              {"HOME": str(conf_dir.parent)})
        ws_proc = self._spawn("zaqar-websocket", [str(self.venv / "bin" / "zaqar-server"), "--config-file", str(conf),
                                                  "--config-file", str(ws_conf)])
        self._zaqar_websocket = ws_proc
        wait_http("http://127.0.0.1:%d/" % ports["zaqar"], 60, proc, "zaqar-server")

    def _wait_zaqar_websocket(self, ports: Dict[str, int]) -> None:
        """Ready when both its websocket port and its notification listener accept connections."""
        for port in ("zaqar-websocket", "zaqar-notification"):
            wait_tcp(ports[port], 60, self._zaqar_websocket, "zaqar-server (websocket)")

    def _start_compute_stub(self, ports: Dict[str, int]) -> None:
        """The one Nova call Heat makes about DeployedServers (see compute_stub.py)."""
        proc = self._spawn("compute-stub", [sys.executable, str(Path(__file__).with_name("compute_stub.py")),
                                            str(ports["compute"])])
        wait_http("http://127.0.0.1:%d/" % ports["compute"], 30, proc, "compute stub")

    # -- heat -------------------------------------------------------------------------------
    def _start_heat(self, info: Dict[str, Any], ports: Dict[str, int], pw: Dict[str, str]) -> None:
        hdir = self.dir / "heat"
        hdir.mkdir(exist_ok=True)
        (hdir / "policy.yaml").write_text(HEAT_POLICY)
        ks = "http://127.0.0.1:%d" % ports["keystone"]
        cfn = "http://127.0.0.1:%d" % ports["cfn"]
        service_auth = self._service_auth(ports, pw)
        conf = hdir / "heat.conf"
        ec2 = dict(service_auth)
        # heat-api-cfn posts to <endpoint>/v3/ec2tokens: the override is Keystone's root, not /v3
        ec2.update({"auth_uri": ks + "/v3", "endpoint_override": ks, "region_name": REGION})
        authtoken = dict(service_auth)
        authtoken.update({"www_authenticate_uri": ks + "/v3", "region_name": REGION})
        trustee = {k: v for k, v in service_auth.items() if not k.startswith("project")}
        write_ini(conf, {
            "DEFAULT": {
                "debug": "false", "use_stderr": "true",
                "transport_url": "rabbit://oca:%s@127.0.0.1:%d/" % (pw["rabbit"], ports["amqp"]),
                "heat_metadata_server_url": cfn,
                "heat_waitcondition_server_url": cfn + "/v1/waitcondition",
                "stack_domain_admin": "heat_domain_admin",
                "stack_domain_admin_password": pw["domain_admin"],
                "stack_user_domain_name": "heat",
                "num_engine_workers": "1",
                "region_name_for_services": REGION,
                "environment_dir": self.venv / "etc" / "heat" / "environment.d",
                "template_dir": self.venv / "etc" / "heat" / "templates",
                "plugin_dirs": hdir / "plugins",
                "host": "oca-e2e",
                "periodic_interval": "60",
                "rpc_response_timeout": "120",
            },
            "paste_deploy": {"api_paste_config": self.venv / "etc" / "heat" / "api-paste.ini"},
            "database": {"connection": database_url(ports, pw, "heat")},
            "oslo_policy": {"policy_file": hdir / "policy.yaml"},
            "oslo_concurrency": {"lock_path": hdir / "locks"},
            "keystone_authtoken": authtoken,
            "trustee": trustee,
            "clients_keystone": {"auth_uri": ks},
            "clients": {"endpoint_type": "publicURL"},
            "ec2authtoken": ec2,
            "heat_api": {"workers": "1"},
            "heat_api_cfn": {"workers": "1"},
        })
        self._run("heat-manage", [str(self.venv / "bin" / "heat-manage"), "--config-file", str(conf), "db_sync"])
        engine = self._spawn("heat-engine", [str(self.venv / "bin" / "heat-engine"), "--config-file", str(conf)])
        api = self._gunicorn("heat-api", ports["heat"], "heat.wsgi.api", ["heat-api", "--config-file", str(conf)])
        cfn_api = self._gunicorn("heat-api-cfn", ports["cfn"], "heat.wsgi.cfn",
                                 ["heat-api-cfn", "--config-file", str(conf)])
        wait_http("http://127.0.0.1:%d/" % ports["heat"], 120, api, "heat-api")
        wait_http("http://127.0.0.1:%d/" % ports["cfn"], 120, cfn_api, "heat-api-cfn")
        # The engine is ready when an RPC round trip through the API answers.
        token, _ = keystone_token(info["auth_url"], "admin", pw["admin"], "admin")
        deadline = time.monotonic() + 120
        while True:
            if engine.poll() is not None:
                raise RuntimeError("heat-engine exited with %s; see %s" % (engine.returncode,
                                                                          self.log_dir / "heat-engine.log"))
            try:
                rest("GET", "%s/%s/stacks" % (info["heat_url"], info["admin"]["project_id"]), token=token,
                     timeout=30)
                break
            except (ApiError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)


#: Listening addresses that only this machine can reach.
LOOPBACK_ADDRESSES = ("127.0.0.1", "[::1]", "[::ffff:127.0.0.1]")


def session_members(leaders: List[int]) -> List[int]:
    """Every process in the sessions of ``leaders`` (each service runs in a session of its own)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in leaders:  # field 6 of stat: the session id
            members.append(int(stat.parent.name))
    return members


def _proc_address(text: str) -> str:
    """``/proc/net/tcp{,6}``'s ``HEX:PORT`` as ``127.0.0.1:80`` or ``[::1]:80`` (each 32-bit word is
    in host byte order)."""
    hex_ip, hex_port = text.split(":")
    raw = bytes.fromhex(hex_ip)
    ip = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(ip) == 4 else socket.AF_INET6
    shown = socket.inet_ntop(family, ip)
    return "%s:%d" % (shown if family == socket.AF_INET else "[%s]" % shown, int(hex_port, 16))


def listening_sockets(pids: List[int]) -> List[Tuple[int, str, str]]:
    """(pid, command name, listening address) of each TCP socket in LISTEN state that one of ``pids`` holds."""
    listening: Dict[str, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                listening[fields[9]] = _proc_address(fields[1])
    found = []
    for pid in pids:
        try:
            comm = Path("/proc/%d/comm" % pid).read_text().strip()
            links = [os.readlink(fd) for fd in Path("/proc/%d/fd" % pid).iterdir()]
        except OSError:  # gone meanwhile
            continue
        for link in links:
            inode = link[len("socket:["):-1] if link.startswith("socket:[") else None
            if inode in listening:
                found.append((pid, comm, listening[inode]))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- heat client

class Heat:
    """The few orchestration calls the suite and `check` need, as the admin user (plain REST)."""

    def __init__(self, info: Dict[str, Any]):
        self.info = info
        self.base = "%s/%s" % (info["heat_url"], info["admin"]["project_id"])
        self._token: Optional[str] = None
        self._token_time = 0.0

    @property
    def token(self) -> str:
        if self._token is None or time.monotonic() - self._token_time > 3000:
            self._token, _ = keystone_token(self.info["auth_url"], "admin", self.info["admin"]["password"], "admin")
            self._token_time = time.monotonic()
        return self._token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 60) -> Any:
        return rest(method, self.base + path, body, token=self.token, timeout=timeout)[2]

    def create_stack(self, name: str, template: Dict[str, Any], parameters: Optional[Dict[str, Any]] = None,
                     environment: Optional[Dict[str, Any]] = None, timeout_mins: int = 10,
                     files: Optional[Dict[str, str]] = None) -> str:
        """POST a stack as heatclient does (``files`` holds get_file contents by URL); returns its id."""
        body = {"stack_name": name, "template": template, "parameters": parameters or {},
                "timeout_mins": timeout_mins}
        if environment:
            body["environment"] = environment
        if files:
            body["files"] = files
        for attempt in range(4):
            try:
                return self.call("POST", "/stacks", body)["stack"]["id"]
            except ApiError as exc:
                # heat-engine 27 now and then asks Keystone for the stack's trust with a domain-scoped
                # session (seen right after another stack's deletion; its log then shows "identity:
                # create_trust ... requires a scope of ['project']"): Keystone refuses, the API answers a
                # bare 500 RemoteError, nothing was created. Asking again succeeds.
                if exc.status != 500 or "RemoteError" not in exc.body or attempt == 3:
                    raise
                print("heat: stack create refused (%s), retrying" % exc, file=sys.stderr)
                time.sleep(2)
        raise AssertionError("unreachable")

    def update_stack(self, name: str, stack_id: str, template: Dict[str, Any],
                     parameters: Optional[Dict[str, Any]] = None) -> None:
        self.call("PUT", "/stacks/%s/%s" % (name, stack_id), {"template": template,
                                                             "parameters": parameters or {}})

    def delete_stack(self, name: str, stack_id: str) -> None:
        self.call("DELETE", "/stacks/%s/%s" % (name, stack_id))

    def stack(self, name: str, stack_id: str) -> Dict[str, Any]:
        return self.call("GET", "/stacks/%s/%s" % (name, stack_id))["stack"]

    def wait(self, name: str, stack_id: str, timeout: float, poll: float = 1.0) -> Dict[str, Any]:
        """Poll until the stack leaves IN_PROGRESS (or is gone, for deletes); return its last state."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                st = self.stack(name, stack_id)
            except ApiError as exc:
                if exc.status == 404:
                    return {"stack_status": "DELETE_COMPLETE", "stack_status_reason": "gone"}
                raise
            if not st["stack_status"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
                return st
            time.sleep(poll)

    def events(self, name: str, stack_id: str) -> List[Dict[str, Any]]:
        return self.call("GET", "/stacks/%s/%s/events?nested_depth=2" % (name, stack_id))["events"]


CHECK_TEMPLATE = {
    "heat_template_version": "2021-04-16",
    "resources": {"rand": {"type": "OS::Heat::RandomString", "properties": {"length": 8}}},
    "outputs": {"value": {"value": {"get_attr": ["rand", "value"]}}},
}


def check(info: Dict[str, Any]) -> float:
    """Create and delete a trivial stack; return the seconds to CREATE_COMPLETE."""
    heat = Heat(info)
    name = "oca-check-%d" % int(time.time())
    started = time.monotonic()
    sid = heat.create_stack(name, CHECK_TEMPLATE)
    st = heat.wait(name, sid, 120)
    took = time.monotonic() - started
    if st["stack_status"] != "CREATE_COMPLETE":
        raise RuntimeError("check stack ended %s: %s" % (st["stack_status"], st["stack_status_reason"]))
    heat.delete_stack(name, sid)
    heat.wait(name, sid, 120)
    return took


# --------------------------------------------------------------------------------------------- CLI

def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("setup", "start", "check", "env", "stop"))
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                        help="where configs, databases, logs and pidfiles go (default %(default)s)")
    args = parser.parse_args(argv)
    plane = ControlPlane(Path(args.state_dir))
    try:
        if args.command == "setup":
            venv, took = ensure_venv()
            print("control plane virtualenv %s ready (%.1f s)" % (venv, took))
        elif args.command == "start":
            venv, took = ensure_venv()
            print("control plane virtualenv %s ready (%.1f s)" % (venv, took))
            started = time.monotonic()
            info = plane.start()
            print("control plane started in %.1f s: keystone %s, heat %s, cfn %s (state in %s)"
                  % (time.monotonic() - started, info["auth_url"], info["heat_url"], info["cfn_url"], plane.dir))
        elif args.command == "check":
            print("trivial stack CREATE_COMPLETE in %.1f s" % check(plane.info()))
        elif args.command == "env":
            for k, v in plane.env().items():
                print("export %s=%s" % (k, _shell_quote(v)))
        else:
            print("stopped: %s" % (", ".join(plane.stop()) or "nothing was running"))
    except (RuntimeError, ApiError, OSError, subprocess.CalledProcessError) as exc:
        print("controlplane %s: %s" % (args.command, exc), file=sys.stderr)
        return 1
    return 0


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


if __name__ == "__main__":
    sys.exit(main())

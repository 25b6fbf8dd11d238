"""``heat-config run`` for a template author who is not root (SPEC §12.18, issue 15 item 3).

The test suite runs as root, so these tests run the real command as ``nobody`` (setpriv) with
HOME or XDG_STATE_HOME in a directory that user owns: nothing is redirected by HEAT_SCRIPT_*,
so the command must find out by itself that the system directories are not writable.
"""
from __future__ import annotations

import json
import os
import pty
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.support.sandbox import BIN_DIR
from tests.support.wait import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                                reason="needs root and setpriv to run the command as another user")

HELLO = """\
group: script
inputs:
  - name: who
    default: world
outputs:
  - name: greeting
config: |
  #!/bin/sh
  echo "hello $who" > $heat_outputs_path.greeting
  echo "said hello to $who"
  echo "a warning" >&2
"""

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory ``nobody`` owns, outside root's 0700 pytest temp tree."""
    path = Path(tempfile.mkdtemp(prefix="hc-run-user-"))
    user = pwd.getpwnam("nobody")
    os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def user_env(home: Path, **extra: str) -> Dict[str, str]:
    env = {"PATH": "%s:/usr/bin:/bin" % BIN_DIR, "HOME": str(home), "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


def write(home: Path, name: str, text: str) -> Path:
    path = home / name
    path.write_text(text)
    os.chown(path, pwd.getpwnam("nobody").pw_uid, -1)
    return path


def run_as_nobody(home: Path, args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(AS_NOBODY + [str(BIN_DIR / "heat-config"), *args], env=env, cwd=str(home),
                          capture_output=True, text=True, timeout=60)


def files_under(path: Path) -> List[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_run_as_a_user_keeps_files_under_the_user_state_dir_and_says_where(home):
    """Before: ``[ERROR] Hook crashed`` and a PermissionError traceback on /var/run/heat-config."""
    config = write(home, "hello.yaml", HELLO)
    result = run_as_nobody(home, ["run", str(config), "--input", "who=author"], user_env(home))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "Permission denied" not in result.stderr
    out = json.loads(result.stdout)
    assert out == {"greeting": "hello author\n", "deploy_stdout": "said hello to author\n",
                   "deploy_stderr": "a warning\n", "deploy_status_code": 0}
    state = home / ".local" / "state" / "os-config-agents"
    assert "this run keeps its files under %s (HEAT_SCRIPT_OUTPUTS=%s/var/run/heat-config/heat-config-script, " \
           "HEAT_SCRIPT_WORKING=%s/var/lib/heat-config/heat-config-script)" % (state, state, state) in result.stderr
    assert (state / "var" / "lib" / "heat-config" / "heat-config-script").is_dir()
    # the run's deployment is in no metadata: its script and output file are gone at the end
    assert files_under(state) == []


def test_xdg_state_home_and_named_variables_win(home):
    config = write(home, "hello.yaml", HELLO)
    xdg = home / "xdg"
    outputs = home / "my-outputs"
    env = user_env(home, XDG_STATE_HOME=str(xdg), HEAT_SCRIPT_OUTPUTS=str(outputs))
    result = run_as_nobody(home, ["run", str(config)], env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["greeting"] == "hello world\n"
    assert "keeps its files under %s/os-config-agents (HEAT_SCRIPT_WORKING=" % xdg in result.stderr
    assert "HEAT_SCRIPT_OUTPUTS" not in result.stderr  # named by its variable: used as it is
    assert outputs.is_dir() and not (xdg / "os-config-agents" / "var" / "run").exists()
    assert not (home / ".local").exists()


def test_run_format_text(home):
    config = write(home, "hello.yaml", HELLO.replace('echo "a warning" >&2', 'echo "a warning" >&2\n  exit 3'))
    result = run_as_nobody(home, ["run", str(config), "--format", "text"], user_env(home))
    assert result.returncode == 3
    assert result.stdout == ("--- deploy_stdout ---\nsaid hello to world\n--- deploy_stderr ---\na warning\n"
                             "--- outputs ---\ngreeting: hello world\ndeploy_status_code: 3\n")


def test_hook_output_is_shown_live_when_stderr_is_a_terminal(home):
    """The hook's first line reaches the terminal while the hook still waits for the test's release."""
    release = home / "release"
    config = write(home, "slow.yaml", "group: script\nconfig: |\n  #!/bin/sh\n  echo first-line\n"
                   "  while [ ! -e %s ]; do sleep 0.05; done\n  echo second-line >&2\n" % release)
    master, slave = pty.openpty()
    proc = subprocess.Popen(AS_NOBODY + [str(BIN_DIR / "heat-config"), "run", str(config)], env=user_env(home),
                            cwd=str(home), stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    seen = bytearray()

    def read_until(word: bytes) -> bool:
        import select

        if select.select([master], [], [], 0.1)[0]:
            try:
                seen.extend(os.read(master, 65536))
            except OSError:
                pass
        return word in seen

    try:
        wait_for(lambda: read_until(b"first-line"), 30, "the hook's first line on the terminal")
        assert proc.poll() is None  # still running: the line came live, not at the end
        write(home, "release", "")
        out, _ = proc.communicate(timeout=30)
        wait_for(lambda: read_until(b"second-line"), 10, "the hook's stderr line on the terminal")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0
    assert json.loads(out)["deploy_stdout"] == "first-line\n"  # stdout stays the JSON result

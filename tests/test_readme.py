"""The README's examples are run, so that they cannot rot (issue 15).

Every example in README.md is a fenced block whose info string says what it is:

- ```` ```sh ```` runs, in README order, as root in a sandbox: a private mount namespace with overlays over
  /etc, /usr, /var, /opt and /root, so whatever it writes there is real inside and gone afterwards; the
  working directory is a copy of this checkout; the commands are the ones of the venv under test.
- ```` ```sh as-user ```` runs the same way as an ordinary user (``nobody``), in a home of its own.
- ```` ```sh no-run: REASON ```` is not run here (a cloud, an image build or an install another test runs);
  every repository path it names must exist.
- ```` ```ini ```` is an os-collect-config configuration: tests/os_collect_config/test_check_config.py runs
  ``--check-config`` on it.
- ```` ```console ```` is a transcript: each ``$`` line runs one of our commands or a repository script.

An indented code block is refused: an example that does not say what it is would escape every check.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterator, List

import pytest

from tests.support.readme import README, Block, blocks_of, indented_code_lines, readme_blocks

REPO = Path(__file__).resolve().parents[1]
BIN_DIR = Path(sys.executable).parent
KINDS = {"sh", "ini", "console", "yaml", "json"}
OVERLAID = ["/etc", "/usr", "/var", "/opt", "/root"]
REPO_PATH = re.compile(r"(?<![\w/.$-])((?:scripts|boot_config|elements|tests|bench|demo|docs)/[\w./-]*\w)")
PASSED_THROUGH = re.compile(r"^(PIP_|LANG$|LC_ALL$|https?_proxy$|no_proxy$|HTTPS?_PROXY$|NO_PROXY$)")


def runnable() -> List[Block]:
    return [b for b in blocks_of("sh") if not b.options.startswith("no-run")]


def test_every_example_says_what_it_is():
    assert indented_code_lines(README.read_text(encoding="utf-8")) == [], "indented code blocks: fence them"
    for block in readme_blocks():
        assert block.kind in KINDS, "%s: unknown kind %r" % (block.where, block.kind)
        if block.kind == "sh":
            assert block.options in ("", "as-user") or re.match(r"no-run: \S", block.options), block.where
    assert runnable(), "the README has no example that runs"


def console_scripts() -> List[str]:
    return [ep.name for ep in metadata.distribution("os-config-agents").entry_points if ep.group == "console_scripts"]


@pytest.mark.parametrize("block", blocks_of("console"), ids=lambda b: "line%d" % b.line)
def test_console_transcript_runs_our_commands(block):
    commands = [line[2:].split()[0] for line in block.text.splitlines() if line.startswith("$ ")]
    assert commands, "%s: a transcript with no `$ ` command" % block.where
    for command in commands:
        assert command in console_scripts() or (REPO / command).is_file(), "%s: %s" % (block.where, command)


@pytest.mark.parametrize("block", [b for b in blocks_of("sh") if b not in runnable()], ids=lambda b: "line%d" % b.line)
def test_example_not_run_here_names_only_paths_that_exist(block):
    for path in REPO_PATH.findall(block.text):
        assert (REPO / path).exists(), "%s names %s, which this checkout does not have" % (block.where, path)


@pytest.fixture
def sandbox_root() -> Iterator[Path]:
    """A directory ``nobody`` can enter (pytest's tmp dirs are 0700): the checkout copy, overlays, user home."""
    root = Path(tempfile.mkdtemp(prefix="oca-readme-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def copy_checkout(dest: Path) -> None:
    """The tracked files as they are in the working tree (uncommitted edits included), nothing built."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o055 | (0o011 if path.is_dir() else 0))


SANDBOX = r"""
set -eu
for dir in $OVERLAID; do
  mkdir -p "$LAYERS$dir/upper" "$LAYERS$dir/work"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$LAYERS$dir/upper,workdir=$LAYERS$dir/work" "$dir"
done
cd "$CHECKOUT"
exec "$@"
"""


def run_in_sandbox(root: Path, block: Block) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if PASSED_THROUGH.match(k)}
    env.update(PATH="%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % BIN_DIR, HOME="/root",
               LAYERS=str(root / "layers"), CHECKOUT=str(root / "checkout"), OVERLAID=" ".join(OVERLAID))
    script = ["bash", "-euo", "pipefail", "-c", block.text]
    if block.options == "as-user":
        home = root / "home"
        home.mkdir(exist_ok=True)
        shutil.chown(home, "nobody", "nogroup")
        script = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "-C", str(home),
                  "HOME=%s" % home, "USER=nobody", "LOGNAME=nobody", *script]
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", SANDBOX, "sandbox", *script],
                          env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox mounts overlays: root only")
def test_sh_examples_run_in_order_in_a_sandbox(sandbox_root):
    (sandbox_root / "checkout").mkdir()
    copy_checkout(sandbox_root / "checkout")
    host_before = {d: sorted(os.listdir(d)) for d in ("/opt", "/usr/local/bin", "/etc")}
    for block in runnable():
        proc = run_in_sandbox(sandbox_root, block)
        assert proc.returncode == 0, "%s exited %d\n--- script\n%s--- stdout\n%s--- stderr\n%s" % (
            block.where, proc.returncode, block.text, proc.stdout[-4000:], proc.stderr[-4000:])
    # every write landed in an overlay's upper layer, none on the host
    assert {d: sorted(os.listdir(d)) for d in host_before} == host_before

"""Writing the output tree (SPEC §4.5, §4.8, §4.9) and the fixes of §5.9.24/25/29 and §12.13.1."""
from __future__ import annotations

import os
import pwd
import grp

import pytest

from os_apply_config.oac import Control, ControlError, _parse_simple, _parse_yaml, parse_control
from tests.os_apply_config.conftest import one_error_line


@pytest.fixture
def md(oac):
    return oac.metadata("m.json", {"v": "value", "empty": ""})


def mode_of(path) -> int:
    return os.stat(path).st_mode & 0o7777


def test_tree_mirrors_the_target_and_skips_oac_and_symlinked_dirs(oac, md, sandbox):
    oac.template("etc/nova/nova.conf", "{{v}}")
    oac.template("a/b/c/deep", "x")
    oac.template("etc/orphan.oac", "mode: 0600\n")  # control file without template: ignored
    outside = sandbox.path("elsewhere")
    outside.mkdir()
    (outside / "linked").write_text("via dir link")
    os.symlink(outside, oac.templates / "etc" / "dirlink")
    (oac.templates / "etc" / "filelink").symlink_to(oac.templates / "a" / "b" / "c" / "deep")
    assert oac.render("-m", md).returncode == 0
    assert oac.output("etc/nova/nova.conf") == "value"
    assert oac.output("a/b/c/deep") == "x"
    assert oac.output("etc/filelink") == "x"
    assert not (oac.out / "etc" / "orphan").exists() and not (oac.out / "etc" / "orphan.oac").exists()
    assert not (oac.out / "etc" / "dirlink").exists()


def test_new_file_modes_existing_modes_and_default_mode(oac, md):
    oac.template("etc/plain", "{{v}}")
    oac.template("etc/secret", "{{v}}", oac="mode: 0600\n")
    assert oac.render("-m", md).returncode == 0
    assert mode_of(oac.out / "etc" / "plain") == 0o644
    assert mode_of(oac.out / "etc" / "secret") == 0o600
    os.chmod(oac.out / "etc" / "plain", 0o640)  # an existing file keeps its mode
    oac.template("etc/plain", "{{v}} changed")
    assert oac.render("-m", md).returncode == 0
    assert mode_of(oac.out / "etc" / "plain") == 0o640 and oac.output("etc/plain") == "value changed"
    oac.template("etc/new", "n")
    assert oac.render("-m", md, "--default-mode", "0600").returncode == 0
    assert mode_of(oac.out / "etc" / "new") == 0o600


def test_unchanged_run_writes_nothing(oac, md):
    for i in range(5):
        oac.template("etc/f%d" % i, "{{v}} %d" % i)
    assert oac.render("-m", md).returncode == 0
    before = {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (oac.out / "etc").iterdir()}
    r = oac.render("-m", md)
    assert r.returncode == 0 and "writing" not in r.stderr
    assert {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (oac.out / "etc").iterdir()} == before
    os.chmod(oac.out / "etc" / "f1", 0o600)
    (oac.out / "etc" / "f2").write_text("edited by hand")
    r = oac.render("-m", md)
    written = sorted(l.rsplit("/", 1)[1] for l in r.stderr.splitlines() if "writing" in l)
    assert written == ["f2"]  # a mode that an admin tightened is kept; content is restored
    assert oac.output("etc/f2") == "value 2"
    oac.template("etc/f1", "{{v}} 1", oac="mode: 0644\n")
    r = oac.render("-m", md)
    assert [l.rsplit("/", 1)[1] for l in r.stderr.splitlines() if "writing" in l] == ["f1"]
    assert mode_of(oac.out / "etc" / "f1") == 0o644


def test_one_bad_template_leaves_every_target_untouched(oac, md):
    oac.template("etc/a", "{{v}}")
    assert oac.render("-m", md).returncode == 0
    oac.template("etc/a", "{{v}} new")
    oac.template("etc/b", "{{v}}")
    oac.template("etc/c", "{{#v}}", oac=None)
    r = oac.render("-m", md)
    assert r.returncode == 1
    assert oac.output("etc/a") == "value"
    assert sorted(os.listdir(oac.out / "etc")) == ["a"]  # no temp files either


def test_target_that_is_a_directory_fails_before_anything_is_written(oac, md):
    oac.template("etc/a", "{{v}}")
    oac.template("etc/z", "{{v}}")
    (oac.out / "etc" / "z").mkdir(parents=True)
    r = oac.render("-m", md)
    assert r.returncode == 1 and "is a directory" in r.stderr and "Traceback" not in r.stderr
    assert not (oac.out / "etc" / "a").exists()


def test_write_failure_is_one_line_and_changes_nothing(oac, md):
    oac.template("etc/a", "{{v}}")
    oac.template("zz/b", "{{v}}")
    # A dangling symlink where a directory must be created: found only when writing.
    os.symlink("/nonexistent/dir", oac.out / "zz")
    r = oac.render("-m", md)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "no file was changed" in r.stderr
    assert not (oac.out / "etc").exists() or os.listdir(oac.out / "etc") == []


def test_blocked_parent_is_found_before_writing(oac, md):
    oac.template("etc/a", "{{v}}")
    oac.template("zz/b", "{{v}}")
    (oac.out / "zz").write_text("a file where a directory is needed")
    r = oac.render("-m", md)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Not a directory" in r.stderr
    assert not (oac.out / "etc").exists()


def test_symlink_target_is_replaced_by_a_file_and_its_target_untouched(oac, md, sandbox):
    oac.template("etc/link", "{{v}}")
    real = sandbox.path("real-target")
    real.write_text("original")
    (oac.out / "etc").mkdir()
    os.symlink(real, oac.out / "etc" / "link")
    assert oac.render("-m", md).returncode == 0
    assert not os.path.islink(oac.out / "etc" / "link")
    assert oac.output("etc/link") == "value" and real.read_text() == "original"


def test_allow_empty_false_deletes_or_does_not_create(oac, md):
    oac.template("etc/gone", "{{empty}}", oac="allow_empty: false\n")
    oac.template("etc/kept", "{{empty}}")
    (oac.out / "etc").mkdir()
    (oac.out / "etc" / "gone").write_text("old")
    r = oac.render("-m", md)
    assert r.returncode == 0 and "deleting %s" % (oac.out / "etc" / "gone") in r.stderr
    assert not (oac.out / "etc" / "gone").exists()
    assert oac.output("etc/kept") == ""
    r = oac.render("-m", md)
    assert "not creating empty %s" % (oac.out / "etc" / "gone") in r.stderr


def test_owner_and_group_from_the_control_file(oac, md):
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid)
    oac.template("etc/owned", "{{v}}", oac="owner: nobody\ngroup: %s\n" % group.gr_name)
    oac.template("etc/numeric", "{{v}}", oac="owner: %d\ngroup: '%d'\n" % (nobody.pw_uid, nobody.pw_gid))
    assert oac.render("-m", md).returncode == 0
    for name in ("owned", "numeric"):
        st = os.stat(oac.out / "etc" / name)
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
    # An existing file keeps its owner when the control file says nothing.
    oac.template("etc/owned", "{{v}} 2")
    assert oac.render("-m", md).returncode == 0
    assert os.stat(oac.out / "etc" / "owned").st_uid == nobody.pw_uid


@pytest.mark.parametrize("oac_text,message", [
    ("- a list\n", "header is not a dict"),
    ("body: injected\n", "unrecognised file control key 'body'"),
    ("colour: red\n", "unrecognised file control key 'colour'"),
    ("allow_empty: 'false'\n", "allow_empty requires Boolean, got: 'false'"),
    ("mode: 01363\n", "mode '0o1363' out of range"),
    ("mode: rwx\n", "mode 'rwx' is not an octal number"),
    ("mode: yes\n", "mode 'True' is not numeric"),
    ("owner: no-such-user-xyz\n", "owner 'no-such-user-xyz' not found in passwd database"),
    ("group: no-such-group-xyz\n", "group 'no-such-group-xyz' not found in group database"),
    ("mode: [1\n", "cannot parse control file"),
])
def test_control_file_errors_name_the_template_and_write_nothing(oac, md, oac_text, message):
    oac.template("etc/a", "{{v}}")
    bad = oac.template("etc/b", "{{v}}", oac=oac_text)
    r = oac.render("-m", md)
    assert r.returncode == 1
    assert "%s: %s" % (bad, message) in r.stderr
    assert not (oac.out / "etc" / "a").exists()


def test_a_template_or_control_file_that_is_not_a_regular_file_is_one_line_not_a_hang(oac, md):
    """A FIFO blocked the reader for ever (issue 12, defects 9 and 11): now refused by name, nothing written."""
    oac.template("etc/a", "{{v}}")
    fifo = oac.templates / "etc" / "fifo"
    os.mkfifo(fifo)
    assert one_error_line(oac.render("-m", md, timeout=10)) == "%s: cannot read template: not a regular file" % fifo
    fifo.unlink()
    control = oac.templates / "etc" / "a.oac"
    os.mkfifo(control)
    assert one_error_line(oac.render("-m", md, timeout=10)) == "%s: cannot read: not a regular file" % control
    assert list(oac.out.iterdir()) == []


@pytest.mark.parametrize("text,mode", [
    ("mode: 0640", 0o640), ("mode: 0755", 0o755), ("mode: '0755'", 0o755), ('mode: "755"', 0o755),
    ("mode: 0o600", 0o600), ("mode: 755", 0o755), ("mode: 600", 0o600), ("mode: 420", 420), ("mode: 0", 0),
    ("# only a comment\n", None), ("", None),
])
def test_mode_spellings(text, mode):
    assert parse_control(text).mode == mode


def test_simple_reader_agrees_with_yaml():
    corpus = [
        "mode: 0640\nowner: root\ngroup: root\nallow_empty: false\n",
        "allow_empty: yes\n# c\n\nmode: 0600  # trailing\n", "allow_empty: Off\n", "allow_empty: TRUE\n",
        "mode: 493\n", "mode: 0\n", "owner: svc_user-1\n", "mode: 0644\nmode: 0600\n",
    ]
    for text in corpus:
        simple = _parse_simple(text)
        assert simple is not None, text
        assert simple == _parse_yaml(text), text
    for text in ("mode: 0x1ff\n", "mode: 1_000\n", "owner: null\n", "mode: 09\n", "  mode: 0600\n", "a: [1]\n"):
        assert _parse_simple(text) is None, text  # left to PyYAML


def test_control_defaults():
    assert parse_control("") == Control(allow_empty=True, mode=None, owner=None, group=None)
    with pytest.raises(ControlError):
        parse_control("'just a string'")


class TestDryRun:
    def test_dry_run_reports_and_writes_nothing(self, oac, md):
        oac.template("etc/new", "{{v}}")
        oac.template("etc/same", "same")
        oac.template("etc/changed", "{{v}} v2\n")
        (oac.out / "etc").mkdir()
        (oac.out / "etc" / "same").write_text("same")
        (oac.out / "etc" / "changed").write_text("old line\n")
        r = oac.render("-m", md, "--dry-run")
        assert r.returncode == 0
        lines = r.stdout.splitlines()
        assert "would create %s (new file)" % (oac.out / "etc" / "new") in lines
        assert "would update %s (content)" % (oac.out / "etc" / "changed") in lines
        assert not any("same" in l for l in lines)
        assert not (oac.out / "etc" / "new").exists() and oac.output("etc/changed") == "old line\n"

    def test_diff_shows_content_changes_but_not_of_private_files(self, oac, md):
        oac.template("etc/changed", "{{v}} v2\n")
        oac.template("etc/private", "{{v}}\n", oac="mode: 0600\n")
        (oac.out / "etc").mkdir()
        (oac.out / "etc" / "changed").write_text("old line\n")
        r = oac.render("-m", md, "--diff")
        assert r.returncode == 0
        assert "-old line\n+value v2\n" in r.stdout
        assert "diff not shown: %s is not readable by others" % (oac.out / "etc" / "private") in r.stdout
        assert "+value\n" not in r.stdout


SYNC_CALLS = "/^(sync|syncfs|fsync|fdatasync|rename|renameat|renameat2)$"


def _strace_render(oac, md, trace):
    """os-apply-config rendering into the sandbox's output root under strace (skipped where strace cannot run)."""
    import shutil
    import subprocess

    from tests.support.sandbox import BIN_DIR

    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    argv = [strace, "-f", "-qq", "-y", "-e", "signal=none", "-e", "trace=" + SYNC_CALLS, "-o", str(trace),
            str(BIN_DIR / "os-apply-config"), "-o", str(oac.out), "--fallback-metadata", "-m", md]
    env = dict(oac.sandbox.env, OS_APPLY_CONFIG_LOG_FILE="")
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=str(oac.sandbox.root))
    if r.returncode != 0 and "ptrace" in r.stderr.lower():
        pytest.skip("strace cannot trace here: %s" % r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, r.stderr
    return [line.split(None, 1)[1] for line in trace.read_text().splitlines()]  # without the pid


def test_batch_is_durable_through_fsync_of_its_files_and_directories_not_sync(oac, md, sandbox):
    """SPEC §5.9.24 fixed without os.sync(), which flushes every filesystem of the machine (issue 12, defect 4):
    each temp file is fsynced before it is renamed, and each directory that got a new entry after the renames."""
    (oac.out / "etc").mkdir()
    (oac.out / "etc" / "existing").write_text("old")
    targets = ["etc/existing", "etc/new", "etc/app/deep/conf", "srv/x"]
    for rel in targets:
        oac.template(rel, "{{v}} %s" % rel)
    calls = _strace_render(oac, md, sandbox.path("trace"))
    assert not [c for c in calls if c.startswith(("sync(", "syncfs("))], calls
    renamed_to = {c.split(", ")[-1].split('"')[1]: i for i, c in enumerate(calls) if c.startswith("rename")}
    renames = [renamed_to[str(oac.out / rel)] for rel in targets]
    for renamed in renames:
        temp = calls[renamed].split('"')[1]
        [synced] = [i for i, c in enumerate(calls) if c.startswith("fsync(") and "<%s>" % temp in c]
        assert synced < min(renames), "temp file %s fsynced after a rename: %s" % (temp, calls)
    before = calls[:min(renames)]  # fsyncs run on several threads: each one has returned before the renames
    assert sum("<unfinished" in c for c in before) == sum(c.startswith("<... fsync resumed") for c in before)
    dir_syncs = {c.split("<", 1)[1].split(">", 1)[0] for c in calls[max(renames):] if c.startswith("fsync(")}
    # every directory that got a renamed file, and the parent of every directory created for the batch
    expected = {str(oac.out / d) for d in ("etc", "etc/app/deep", "srv", "etc/app", "")}
    assert expected <= dir_syncs, calls
    assert {oac.output(rel) for rel in targets} == {"value %s" % rel for rel in targets}

"""Atomic writes: the mode is right from the first byte, and a failure leaves the old file whole."""
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from agent_common.atomic import atomic_copy, atomic_write, ensure_dir
from agent_common.documents import read_text


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_gets_requested_mode_and_content(tmp_path):
    target = tmp_path / "secret.json"
    atomic_write(str(target), '{"a": 1}', 0o600)
    assert target.read_text() == '{"a": 1}'
    assert mode_of(target) == 0o600


def test_replacing_keeps_no_temp_files_and_applies_new_mode(tmp_path):
    target = tmp_path / "f"
    target.write_text("old")
    target.chmod(0o644)
    atomic_write(str(target), b"new", 0o640)
    assert target.read_bytes() == b"new"
    assert mode_of(target) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_failed_write_leaves_old_content_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_text("old")

    def broken_rename(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "rename", broken_rename)
    with pytest.raises(OSError):
        atomic_write(str(target), "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["f"]


def test_copy_and_read_text(tmp_path):
    src = tmp_path / "src"
    src.write_text("payload")
    atomic_copy(str(src), str(tmp_path / "dst"), 0o600)
    assert read_text(str(tmp_path / "dst")) == "payload"
    assert mode_of(tmp_path / "dst") == 0o600
    assert read_text(str(tmp_path / "missing")) is None


def test_ensure_dir_creates_private_dir(tmp_path):
    d = tmp_path / "a" / "b"
    old = os.umask(0)
    try:
        ensure_dir(str(d))
    finally:
        os.umask(old)
    assert mode_of(d) == 0o700


def test_unsynced_write_is_still_atomic_and_skips_fsync(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    target = tmp_path / "script"
    target.write_text("old and much longer content")
    atomic_write(str(target), "new", 0o700, sync=False)
    assert target.read_text() == "new"
    assert mode_of(target) == 0o700
    assert sorted(os.listdir(tmp_path)) == ["script"]
    assert calls == []
    atomic_write(str(target), "synced", 0o700)
    assert len(calls) == 2


def test_batch_replaces_all_files_or_none(tmp_path):
    from agent_common.atomic import AtomicBatch

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old-a")
    with AtomicBatch() as batch:
        batch.stage(str(a), "new-a", 0o600)
        batch.stage(str(b), b"new-b", 0o640)
        assert a.read_text() == "old-a" and not b.exists()  # nothing visible before commit
    assert (a.read_text(), b.read_text()) == ("new-a", "new-b")
    assert (a.stat().st_mode & 0o777, b.stat().st_mode & 0o777) == (0o600, 0o640)
    try:
        with AtomicBatch() as batch:
            batch.stage(str(a), "newer-a", 0o600)
            batch.stage(str(tmp_path / "missing-dir" / "c"), "x", 0o600)
    except FileNotFoundError:
        pass
    assert a.read_text() == "new-a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp file left behind


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_batch_across_new_directories_gives_each_file_its_mode_and_leaves_no_temp(tmp_path):
    from agent_common.atomic import AtomicBatch

    targets = {"a/x": 0o600, "a/b/c/y": 0o640, "z": 0o644, "a/b/w": 0o755}
    (tmp_path / "z").write_text("old")
    with AtomicBatch() as batch:
        for rel, mode in targets.items():
            batch.make_dirs(str((tmp_path / rel).parent))
            batch.stage(str(tmp_path / rel), "new %s" % rel, mode)
        visible = [p for p in tree(tmp_path) if not os.path.basename(p).startswith(".tmp")]
        assert visible == ["z"] and (tmp_path / "z").read_text() == "old"  # nothing changes before the commit
    assert tree(tmp_path) == sorted(targets)
    for rel, mode in targets.items():
        assert (tmp_path / rel).read_text() == "new %s" % rel and mode_of(tmp_path / rel) == mode


def test_batch_aborted_by_a_failing_stage_leaves_every_target_untouched(tmp_path):
    from agent_common.atomic import AtomicBatch

    for name in ("a", "b"):
        (tmp_path / name).write_text("old-" + name)
        (tmp_path / name).chmod(0o644)
    (tmp_path / "dir").mkdir()
    with pytest.raises(TypeError):
        with AtomicBatch() as batch:
            batch.stage(str(tmp_path / "a"), "new-a", 0o600)
            batch.stage(str(tmp_path / "b"), "new-b", 0o600)
            batch.stage(str(tmp_path / "dir" / "c"), 5, 0o600)  # not bytes: fails while writing
    assert [(tmp_path / n).read_text() for n in ("a", "b")] == ["old-a", "old-b"]
    assert [mode_of(tmp_path / n) for n in ("a", "b")] == [0o644, 0o644]
    assert tree(tmp_path) == ["a", "b"]  # no temp file anywhere, the failed one's included


def test_batch_whose_temp_file_cannot_be_synced_changes_nothing(tmp_path):
    """The fsyncs run on several threads; one that fails still fails the commit, before any rename."""
    from agent_common.atomic import AtomicBatch

    names = ["f%d" % i for i in range(20)]
    for name in names:
        (tmp_path / name).write_text("old")
    batch = AtomicBatch()
    for name in names:
        batch.stage(str(tmp_path / name), "new", 0o600)
    [lost] = [p for p in tmp_path.iterdir() if p.name.startswith(".tmpf7.")]
    lost.unlink()  # removed behind the batch's back: its fsync cannot open it
    with pytest.raises(FileNotFoundError) as failed:
        batch.commit()
    assert failed.value.filename == str(lost)
    assert tree(tmp_path) == sorted(names) and {(tmp_path / n).read_text() for n in names} == {"old"}


#: A process that holds SIGTERM for its writes, and sends itself one while a thread other than the main
#: one is inside a write (its fsync waits until the main thread has shown it is still alive).
HELD_SIGTERM = textwrap.dedent("""
    import os, signal, sys, threading
    from agent_common import atomic

    inside, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd):
        inside.set()
        release.wait(30)
        real_fsync(fd)

    os.fsync = slow_fsync
    atomic.hold_sigterm_during_writes()
    writer = threading.Thread(target=atomic.atomic_write, args=(sys.argv[1], b'{"new": true}'))
    writer.start()
    inside.wait(30)
    os.kill(os.getpid(), signal.SIGTERM)
    print("alive after the SIGTERM", flush=True)
    release.set()
    writer.join()
    print("alive after the write", flush=True)
""")


def test_a_sigterm_during_another_threads_write_ends_the_process_once_the_write_is_done(tmp_path):
    """systemctl stop while a collector thread writes its state: before, the temp file stayed behind."""
    target = tmp_path / "state.json"
    target.write_text('{"old": true}')
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", HELD_SIGTERM, str(target)], capture_output=True, text=True,
                          timeout=60, cwd=root)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert done.stdout == "alive after the SIGTERM\n"
    assert target.read_text() == '{"new": true}'
    assert os.listdir(tmp_path) == ["state.json"]

"""The json-file hook (SPEC §8.6), run as users and shims run it: ``heat-config-hook json-file < deployment``."""
from __future__ import annotations

import json
import os
import stat

NESTED = {
    "zeta": [1, 2.5, None, True, {"b": "x", "a": []}],
    "alpha": {"nested": {"deeper": ["é", "\u2603"]}, "empty": {}},
    "number": 10,
}


def deployment(config):
    return {"id": "7a1c5d2e-aaaa-4bbb-8ccc-000000000001", "name": "files", "group": "json-file",
            "config": config, "inputs": [], "outputs": [], "options": {}}


def run_hook(run_tool, config):
    result = run_tool("heat-config-hook", ["json-file"], input=json.dumps(deployment(config)))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def expected_bytes(value):
    return json.dumps(value, indent=4, sort_keys=True, separators=(",", ": ")).encode("utf-8")


def test_writes_exact_bytes_of_nested_values_and_creates_parent_dirs_0700(run_tool, sandbox):
    first = sandbox.path("lib", "new", "conf.json")
    second = sandbox.path("etc", "plain.json")
    values = {str(first): NESTED, str(second): "just a string"}
    umask = os.umask(0o027)  # inherited by the hook: a new file gets the umask default, as the original's open()
    try:
        out = run_hook(run_tool, values)
    finally:
        os.umask(umask)
    assert out == {"deploy_stdout": "", "deploy_stderr": "", "deploy_status_code": 0}
    assert first.read_bytes() == expected_bytes(NESTED)
    assert not first.read_bytes().endswith(b"\n")
    assert second.read_bytes() == b'"just a string"'
    assert stat.S_IMODE(os.stat(first.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(first).st_mode) == 0o640


def test_rewrite_leaves_no_stale_tail_keeps_mode_and_follows_symlinks(run_tool, sandbox):
    target = sandbox.path("etc", "target.json")
    target.write_text(json.dumps({"long": "x" * 500}))
    target.chmod(0o640)
    link = sandbox.path("etc", "link.json")
    link.symlink_to(target)
    out = run_hook(run_tool, {str(link): {"short": 1}})
    assert out["deploy_status_code"] == 0
    assert link.is_symlink()
    assert target.read_bytes() == expected_bytes({"short": 1})
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_bad_paths_fail_clearly_without_crashing_and_good_ones_are_still_written(run_tool, sandbox):
    blocker = sandbox.path("etc", "a-file")
    blocker.write_text("not a directory")
    unwritable = str(blocker / "child.json")
    good = sandbox.path("etc", "good.json")
    deeper = str(blocker / "sub" / "child.json")
    out = run_hook(run_tool, {"bare.json": 1, "rel/dir/x.json": 2, unwritable: 3, deeper: 5, str(good): 4})
    assert out["deploy_status_code"] == 1
    stderr = out["deploy_stderr"]
    assert "'bare.json' is not an absolute path" in stderr
    assert "'rel/dir/x.json' is not an absolute path" in stderr
    assert "%r cannot be written: Not a directory" % unwritable in stderr
    assert "%r cannot be written: Not a directory" % deeper in stderr
    assert len(stderr.splitlines()) == 4
    assert good.read_bytes() == b"4"
    assert not sandbox.path("bare.json").exists() and not sandbox.path("rel").exists()  # run_tool's cwd


def test_config_that_is_not_an_object_is_refused(run_tool):
    out = run_hook(run_tool, ["/tmp/not-a-mapping.json"])
    assert out["deploy_status_code"] == 1
    assert out["deploy_stderr"] == "refused: config must be an object mapping file path to JSON value, not list\n"

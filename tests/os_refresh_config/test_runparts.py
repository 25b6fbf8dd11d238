"""dib-run-parts (SPEC §3.6): selection, order, environment.d, execution, failure, output."""
from __future__ import annotations

import os
import re

import pytest

from os_refresh_config.runparts import sort_names
from tests.os_refresh_config.conftest import script
from tests.support.originals import orc_oac_originals
from tests.support.sandbox import PLANTED_SECRETS

SPEC_ORDER = ["-3q", "00-a", "A_x", "_z", "foo", "5-b", "010-d", "10-c"]


def test_usage_without_argument_or_with_a_non_directory(run_tool, sandbox):
    r = run_tool("dib-run-parts")
    assert r.returncode == 1 and "Usage: dib-run-parts [OPTION] scripts_directory" in r.stderr
    r = run_tool("dib-run-parts", [str(sandbox.path("nope"))])
    assert r.returncode == 1
    assert "must exist and be a directory" in r.stderr and "Usage:" in r.stderr
    r = run_tool("dib-run-parts", ["--list"])
    assert r.returncode == 1


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_explains_selection_and_exits_0(run_tool, sandbox, flag):
    r = run_tool("dib-run-parts", [flag])
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("dib-run-parts: run the executable scripts of one directory")
    assert "RUN_PARTS_REGEX" in r.stdout and "environment.d" in r.stdout
    assert "Usage: dib-run-parts [OPTION] scripts_directory" in r.stdout and "Examples:" in r.stdout
    assert "must exist and be a directory" not in r.stdout


def test_sort_n_order_of_the_spec_example():
    assert sort_names(list(reversed(SPEC_ORDER))) == SPEC_ORDER
    assert sort_names(["1.10-x", "1.5-y", "-1-z", "-0-a", "2"]) == ["-1-z", "-0-a", "1.10-x", "1.5-y", "2"]


def test_list_selects_executable_regular_files_with_matching_names_in_sort_n_order(run_tool, sandbox):
    d = sandbox.path("parts")
    for name in SPEC_ORDER:
        script(d, name, "true\n")
    script(d, "not-exec", "true\n", mode=0o644)
    script(d, "foo.sh", "true\n")
    script(d, ".hidden", "true\n")
    script(d, "backup~", "true\n")
    (d / "subdir").mkdir()
    script(d / "subdir", "99-nested", "true\n")
    os.symlink(d / "00-a", d / "7-link")
    os.symlink(d / "missing", d / "8-dangling")
    r = run_tool("dib-run-parts", ["--list", str(d)], env={"LC_ALL": "en_US.UTF-8"})
    assert r.returncode == 0
    expected = SPEC_ORDER[:5] + ["5-b", "7-link", "010-d", "10-c"]
    assert r.stdout.splitlines() == ["%s/%s" % (d, n) for n in expected]


def test_run_parts_regex_changes_the_filter(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-a", "true\n")
    script(d, "20-b.sh", "true\n")
    r = run_tool("dib-run-parts", ["--list", str(d)], env={"RUN_PARTS_REGEX": r"\.sh$"})
    assert r.stdout.splitlines() == ["%s/20-b.sh" % d]


def test_skipped_scripts_are_named_not_silently_dropped(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-a", "true\n")
    script(d, "20-b.sh", "echo should-not-run\n")
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 0 and "should-not-run" not in r.stdout
    assert re.search(r"Skipping .*/20-b\.sh: its name does not match", r.stderr)


def test_runs_in_order_and_prints_the_originals_lines_and_profile(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "20-second", "echo second\n")
    script(d, "10-first", "echo first; echo to-stderr >&2\n")
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 0
    assert r.stdout == "first\nsecond\n"
    prefix = r"dib-run-parts \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \w+ \d{4} "
    lines = r.stderr.splitlines()
    assert re.fullmatch(prefix + "Running %s/10-first" % re.escape(str(d)), lines[0])
    assert lines[1] == "to-stderr"
    assert re.fullmatch(prefix + "10-first completed", lines[2])
    assert re.fullmatch(prefix + "Running .*/20-second", lines[3])
    assert re.fullmatch(prefix + "-+ PROFILING -+", lines[5])
    assert re.fullmatch(prefix, lines[6])  # blank lines carry the prefix too
    assert re.fullmatch(prefix + "Target: parts", lines[7])
    assert re.fullmatch(prefix + r"Script {35}  Seconds", lines[9])
    assert re.fullmatch(prefix + r"10-first {29} +\d+\.\d{3}", lines[12])
    assert re.fullmatch(prefix + r"20-second +\d+\.\d{3}", lines[13])
    assert re.fullmatch(prefix + "-+ END PROFILING -+", lines[-1])


def test_first_failure_stops_with_its_status_and_no_profile(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-ok", "echo ran-10\n")
    script(d, "20-fail", "echo ran-20; exit 7\n")
    script(d, "30-never", "echo ran-30\n")
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 7
    assert r.stdout == "ran-10\nran-20\n"
    assert "PROFILING" not in r.stderr


def test_failure_leaves_no_temp_dir(run_tool, sandbox, tmp_path):
    d = sandbox.path("parts")
    script(d, "10-fail", "exit 1\n")
    before = set(os.listdir(tmp_path))
    assert run_tool("dib-run-parts", [str(d)]).returncode == 1
    assert set(os.listdir(tmp_path)) == before


def test_empty_directory_succeeds(run_tool, sandbox):
    d = sandbox.path("parts")
    d.mkdir()
    assert run_tool("dib-run-parts", [str(d)]).returncode == 0


def test_script_without_shebang_runs_under_bash(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-noshebang", 'arr=(a b c); echo "bash ${#arr[@]}"\n', shebang="")
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 0 and r.stdout == "bash 3\n"


def test_missing_interpreter_fails_like_bash(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-bad", "true\n", shebang="#!/nonexistent/interpreter\n")
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 127


def test_scripts_get_no_arguments_and_the_callers_cwd(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-args", 'echo "n=$# cwd=$(pwd)"\n')
    cwd = sandbox.path("home")
    r = run_tool("dib-run-parts", [str(d)], cwd=str(cwd))
    assert r.stdout == "n=0 cwd=%s\n" % cwd


class TestEnvironmentD:
    def test_only_exported_variables_reach_scripts_and_files_are_sourced_in_name_order(self, run_tool, sandbox):
        d = sandbox.path("orc", "configure.d")
        env = sandbox.path("orc", "environment.d")
        script(d, "10-show", 'echo "A=${A:-unset} B=${B:-unset} ORDER=$ORDER DOT=${DOT:-unset}"\n')
        sandbox.write("orc/environment.d/20-second", "export ORDER=\"$ORDER,20\"\n")
        sandbox.write("orc/environment.d/10-first", "export A=1\nB=not-exported\nexport ORDER=10\n")
        sandbox.write("orc/environment.d/30.with.dots", "export DOT=yes\n")  # dots allowed, no x bit needed
        sandbox.write("orc/environment.d/bad name", "export A=from-bad-name\n")
        (env / "40-subdir").mkdir()
        r = run_tool("dib-run-parts", [str(d)])
        assert r.returncode == 0, r.stderr
        assert r.stdout == "A=1 B=unset ORDER=10,20 DOT=yes\n"
        sourced = re.findall(r"Sourcing environment file (\S+)", r.stderr)
        assert [os.path.basename(p) for p in sourced] == ["10-first", "20-second", "30.with.dots"]

    def test_values_are_not_traced_into_the_logs(self, run_tool, sandbox):
        d = sandbox.path("orc", "configure.d")
        script(d, "10-use", 'test -n "$DB_PASSWORD" && echo has-password\n')
        sandbox.write("orc/environment.d/10-secrets", "export DB_PASSWORD=%s\n" % PLANTED_SECRETS[0])
        r = run_tool("dib-run-parts", [str(d)])  # run_tool asserts no planted secret in stderr
        assert r.stdout == "has-password\n"
        assert "+ export" not in r.stderr

    @pytest.mark.parametrize("body", ["echo $UNSET_VARIABLE\n", "false\n", "false | true\n"])
    def test_set_eu_pipefail_aborts_before_any_script(self, run_tool, sandbox, body):
        d = sandbox.path("orc", "configure.d")
        script(d, "10-never", "echo ran\n")
        sandbox.write("orc/environment.d/10-broken", body)
        r = run_tool("dib-run-parts", [str(d)])
        assert r.returncode != 0
        assert "ran" not in r.stdout

    def test_local_and_positional_parameters_behave_as_inside_a_function(self, run_tool, sandbox):
        d = sandbox.path("orc", "configure.d")
        script(d, "10-show", 'echo "X=${X:-unset} Y=$Y"\n')
        sandbox.write("orc/environment.d/10-f", 'local X=1\nexport Y="${1:-none}"\n')
        r = run_tool("dib-run-parts", [str(d)])
        assert r.returncode == 0, r.stderr
        assert r.stdout == "X=unset Y=none\n"


@pytest.fixture(scope="session")
def originals():
    return orc_oac_originals()


def test_list_order_matches_the_original_dib_run_parts(run_tool, sandbox, originals):
    d = sandbox.path("parts")
    names = SPEC_ORDER + ["1", "01", "001-x", "9", "90", "09z", "-", "-x", "a-1", "B", "b", "Z9", "0", "-0"]
    for name in names:
        script(d, name, "true\n")
    script(d, "x.sh", "true\n")
    ours = run_tool("dib-run-parts", ["--list", str(d)]).stdout
    theirs = run_tool(str(originals / "dib-run-parts"), ["--list", str(d)], env={"LC_ALL": "C"}).stdout
    assert ours == theirs
    assert len(ours.splitlines()) == len(names)


def test_sigterm_stops_the_running_script_too(sandbox):
    import signal
    import subprocess

    from tests.support.sandbox import BIN_DIR
    from tests.support.wait import wait_for

    d = sandbox.path("parts")
    pidfile = sandbox.path("run", "script.pid")
    script(d, "10-hang", "echo $$ > %s\nexec sleep 60\n" % pidfile)
    p = subprocess.Popen([str(BIN_DIR / "dib-run-parts"), str(d)], env=sandbox.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10, what="the pid file")
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 128 + signal.SIGTERM
    pid = int(pidfile.read_text())
    wait_for(lambda: not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z",
             timeout=10, what="the script to exit (it survived)")


def test_exported_functions_reach_bash_scripts_as_with_the_original(run_tool, sandbox):
    d = sandbox.path("orc", "configure.d")
    script(d, "10-use", "greet\n", shebang="#!/bin/bash\n")
    sandbox.write("orc/environment.d/10-func", 'greet() { echo "hello from env"; }\nexport -f greet\n')
    r = run_tool("dib-run-parts", [str(d)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from env\n"


def test_invalid_run_parts_regex_is_one_line(run_tool, sandbox):
    d = sandbox.path("parts")
    script(d, "10-a", "true\n")
    for args in (["--list", str(d)], [str(d)]):
        r = run_tool("dib-run-parts", args, env={"RUN_PARTS_REGEX": "(["})
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert "RUN_PARTS_REGEX '([' is not a valid regular expression" in r.stderr

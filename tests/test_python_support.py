"""The agents run in guests as old as RHEL 9 (Python 3.9): no newer syntax or library call may slip in."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["agent_common", "os_collect_config", "os_refresh_config", "os_apply_config", "heat_config", "hooks"]


def test_shipped_code_runs_on_python_3_9():
    targets = [str(REPO / p) for p in PACKAGES if (REPO / p).is_dir()]
    proc = subprocess.run(
        [sys.executable, "-m", "vermin", "--no-tips", "--violations", "-t=3.9-", "--eval-annotations",
         "--backport", "dataclasses", *targets],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

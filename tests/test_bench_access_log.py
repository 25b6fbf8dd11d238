"""bench/access_log.py's refusals and the lines it skips (its reading of a real log: tests/e2e/test_access_logs.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ACCESS_LOG = Path(__file__).resolve().parents[1] / "bench" / "access_log.py"
CLAIM = ('[07/Dec/2026:22:49:01 +0000] "POST /v2/queues/q1/claims?limit=20 HTTP/1.1" 201 512 1761ms '
         '"os-collect-config/1.0 Python"\n')


def summarise(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ACCESS_LOG), *args], capture_output=True, text=True, timeout=60)


def test_lines_of_another_form_are_skipped_and_requests_summed_by_kind(tmp_path):
    log = tmp_path / "zaqar.access.log"
    log.write_text("[2026-12-07 22:49:00 +0000] [9] [INFO] Booting worker with pid: 9\n" + CLAIM + CLAIM)
    out = summarise(str(log))
    assert out.returncode == 0, out.stderr
    assert "22:49:00  POST claim 201 os-collect-config" in out.stdout
    assert out.stdout.splitlines()[1].split()[-4:] == ["2", "1761", "1761", "3522"]


def test_a_missing_log_a_log_without_requests_and_a_bucket_under_a_second_are_refused(tmp_path):
    missing = summarise(str(tmp_path / "nothing.log"))
    assert missing.returncode == 1 and "nothing.log: No such file or directory" in missing.stderr
    empty = tmp_path / "empty.log"
    empty.write_text("[2026-12-07 22:49:00 +0000] [9] [INFO] Booting worker with pid: 9\n")
    refused = summarise(str(empty))
    assert refused.returncode == 1 and "no request line in it" in refused.stderr
    zero = summarise(str(empty), "--bucket", "0")
    assert zero.returncode == 2 and "--bucket must be 1 or more seconds" in zero.stderr
    for result in (missing, refused, zero):
        assert "Traceback" not in result.stderr

"""The plane's access logs (``ControlPlane(access_logs=True)``, ``bench/fleet.py --access-logs``).

bench/FLEET.md's zaqar analysis reads them to tell where a slow request waited; the suite's plane keeps them
too, so that a failed scenario's plane logs say which request to which API was slow.
"""
from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.wait import wait_for

ACCESS_LOG = Path(__file__).resolve().parents[2] / "bench" / "access_log.py"


def test_each_api_request_is_logged_with_its_status_and_duration_and_summed_by_the_bench(heat, control_plane):
    marker = "access-log-probe-%s" % uuid.uuid4().hex
    heat.call("GET", "/stacks?name=%s" % marker)
    log = Path(control_plane["state_dir"]) / "logs" / "heat-api.access.log"
    line = r'"GET /v1/%s/stacks\?name=%s HTTP/1\.1" 200 \d+ (\d+)ms "' % (control_plane["admin"]["project_id"],
                                                                        marker)
    # gunicorn writes the line once the answer has gone out
    found = wait_for(lambda: log.exists() and re.search(line, log.read_text()), 30, "the request's line in %s" % log)
    assert int(found.group(1)) < 60000
    # bench/access_log.py reads the lines gunicorn really writes: the request is in a row of its kind.
    summed = subprocess.run([sys.executable, str(ACCESS_LOG), str(log), "--bucket", "3600"],
                            capture_output=True, text=True, timeout=60)
    assert summed.returncode == 0, summed.stderr
    assert re.search(r"^\d\d:00:00  GET /v1/ID/stacks 200 \S+ +[1-9]\d* ", summed.stdout, re.M), summed.stdout

"""A package index for a guest that cannot reach PyPI: the agents' wheel and its dependencies, as PEP 503.

``pip download`` fetches the dependencies here (this machine reaches the registry; the guest does not),
for this interpreter's version and platform, which are the guest's (Debian 12's Python 3.11 on x86_64).
The directory is laid out as a simple index (``simple/<normalized name>/index.html`` linking to the
files) and served on 127.0.0.1 by a thread of the test process, so ``pip install --index-url`` in the
guest, through its loopback forwarder, finds everything it needs and nothing else.
"""
from __future__ import annotations

import functools
import html
import re
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List


def project_of(filename: str) -> str:
    """The PEP 503 normalized project name of a wheel or sdist file name."""
    name = filename.split("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheelhouse(dest: Path, agents_wheel: Path) -> Path:
    """``dest/simple/``: the agents' wheel and every dependency pip resolves for it, binary only."""
    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary", ":all:",
         "--dest", str(files), str(agents_wheel)], capture_output=True, text=True, timeout=600)
    assert fetched.returncode == 0, "pip download failed:\n%s" % fetched.stderr[-4000:]
    projects: Dict[str, List[str]] = {}
    for path in sorted(files.iterdir()):
        projects.setdefault(project_of(path.name), []).append(path.name)
    simple = dest / "simple"
    for project, names in projects.items():
        page = simple / project
        page.mkdir(parents=True, exist_ok=True)
        links = "".join('<a href="../../files/%s">%s</a><br>\n' % (html.escape(n), html.escape(n)) for n in names)
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n%s</body></html>\n" % links)
    (simple / "index.html").write_text("<!DOCTYPE html><html><body>\n%s</body></html>\n" % "".join(
        '<a href="%s/">%s</a><br>\n' % (p, p) for p in sorted(projects)))
    return simple


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's signature)
        pass


class IndexServer:
    """The wheelhouse served on 127.0.0.1 (an ephemeral port) until ``stop``."""

    def __init__(self, root: Path):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/simple/" % self.port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Which modules an interpreter of this environment loads: the one way the import-footprint tests ask.

The footprint tests hold *our* code to its start-up policy (docs/architecture.md). What the interpreter
loads before our first line (``site``, an editable install's finder: on Python 3.9 it imports ``typing``)
and what third-party libraries bring with them (``importlib.metadata`` pulls ``inspect`` on 3.13,
``typing_extensions`` on 3.9) differ from one Python to the next and are not ours, so each test compares
with such a baseline instead of with nothing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Iterable, Set


def modules_after(imports: str) -> Set[str]:
    """The modules a fresh interpreter holds after ``import json, sys`` and ``imports`` (comma-separated)."""
    code = "import json, sys%s; print(json.dumps(sorted(sys.modules)))" % (", " + imports if imports else "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


def importtime_modules(stderr: str) -> Set[str]:
    """The modules named by ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def added(loaded: Set[str], baseline: Set[str], watched: Iterable[str]) -> list:
    """Which of ``watched`` are in ``loaded`` but not in ``baseline``, sorted for a readable assertion."""
    return sorted(m for m in watched if m in loaded and m not in baseline)

"""Lines a test prints into the run's output as it goes: build times, boot times, where a slow suite is."""
from __future__ import annotations

import pytest


def say(request: pytest.FixtureRequest, text: str) -> None:
    """Print now, shown live and not only on failure, even under pytest's output capture."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capman is None or reporter is None:
        print(text)
        return
    with capman.global_and_fixture_disabled():
        reporter.write_line(text)

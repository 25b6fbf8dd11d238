"""The fault, kill, fuzz and soak suite (issue 12): it finds, by itself, the defects short tests never reach.

- ``test_soak.py``: the real os-collect-config polls for 150 s (0.05 s interval, over 1,000 polls)
  against loopback servers that at random go down, answer 5xx, hang or send garbage
  (tests/servers/faults.py), for every collector and Keystone (short-lived, revoked tokens), and
  runs the real pipeline (os-refresh-config → os-apply-config → heat-config) whose CFN signal
  endpoint fails the same way, sometimes long enough that the agent's own between-polls retry
  delivers the signal. It must never exit; every deployment is signalled exactly once; no fault is
  taken for new data; open fds and RSS must stay within stated bounds.
- ``test_kill.py``: SIGKILL at each point of the pipeline (mid-collect, mid-cache-write,
  mid-command, mid-render, mid-hook, mid-signal), found by waiting for an observable event, then a
  restart: no lost signal, no corrupt state file, no hook run twice.
- ``test_fuzz_*.py``: hypothesis generates deployments, metadata for every collector, templates,
  ``.oac`` files, os-collect-config INI files and hook inputs and feeds them to the real commands:
  a result or one clear line, never a traceback, a hang or a file outside the sandbox.
- every output of the suite is scanned for the planted secrets (tests/support/sandbox.py).

The figures (polls, faults by kind, exits, signals lost, fd/RSS growth, kill points × trials,
fuzz examples and tracebacks) are printed in pytest's terminal summary and written as JSON to
``$FAULTS_FIGURES`` (default: ``faults-figures.json`` in pytest's base temp directory).

Randomness is seeded: ``FAULTS_SEED`` (printed; random when unset) drives the soak's faults and
the kill jitter; ``HYPOTHESIS_PROFILE`` is ``ci`` (default: few examples, derandomized) or
``long``. ``scripts/fuzz`` runs the suite longer (``--soak-seconds``, ``--examples``); see its --help.
Run: ``.venv/bin/python -m pytest -q -p no:cacheprovider tests/faults``.
"""

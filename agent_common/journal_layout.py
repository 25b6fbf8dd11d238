"""Where heat-config's journal lives on disk and what an unsettled deployment looks like there.

The dispatcher writes the journal (heat_config.journal); the running
os-collect-config only asks whether anything in it is unsettled, to retry
pending signals between polls.  Both read the layout from here, so neither
imports the other.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
import os

#: The journal directory, under the dispatcher's deployed-state directory.
JOURNAL_DIRNAME = "journal"
#: The lock file a running dispatcher holds (``heat-config status`` tells "running" from "interrupted" by it).
LOCK_NAME = ".lock"
#: One record per deployment: ``<id>.json``.
RECORD_SUFFIX = ".json"
#: The empty flag beside a record that is not settled (its hook not finished or its signal pending), so that
#: one directory listing tells which records a run must read.
OPEN_SUFFIX = ".open"
#: heat-config's signal attempts by result since the journal began (its metrics' counter, SPEC §12.15).
SIGNAL_COUNTS_NAME = ".signal-attempts"
#: Where unusable records are moved, one ``<UTC time>-<pid>`` directory per run, under their own names.
CORRUPT_DIRNAME = "corrupt"


def journal_dir(deployed_dir: str) -> str:
    return os.path.join(deployed_dir, JOURNAL_DIRNAME)


def has_unsettled(deployed_dir: str) -> bool:
    """Whether any deployment's hook or signal is not settled: one directory listing, no record read.

    The running os-collect-config asks this between polls to retry pending signals (SPEC §12.4).
    """
    try:
        return any(name.endswith(OPEN_SUFFIX) for name in os.listdir(journal_dir(deployed_dir)))
    except OSError:
        return False

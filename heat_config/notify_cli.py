"""``heat-config-notify DEPLOYMENT_FILE < SIGNAL_DATA``: send one deployment's signal (SPEC §7).

Same invocation, transport choice, verbs, headers and bodies as the original.  The
exit status says whether to try again: 0 when the signal was accepted or refused
for good (a 4xx that retrying cannot fix, logged and recorded in the journal when
the file lives in a deployed dir); 75 (EX_TEMPFAIL) when it could not be delivered
within the retry bound.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, List, Optional

from agent_common.backoff import Backoff
from agent_common.deployment_contract import deployment_label, input_values, inputs_problem, register_input_secrets
from agent_common.documents import loads_json, read_bytes
from agent_common.cli import common_flags
from agent_common.logs import setup_logging
from heat_config.journal import SIGNAL_REFUSED, SIGNALLED, Journal
from heat_config.signals import BACKOFF_CAP_S, BACKOFF_INITIAL_S, SignalFailed, client_for, retry_budget, routes

TOOL = "heat-config-notify"
LOG = logging.getLogger(TOOL)

USAGE = "Usage:\n  heat-config-notify /path/to/config.json < /path/to/signal_data.json"
EX_TEMPFAIL = 75


def build_parser() -> argparse.ArgumentParser:
    """The help; the command line stays the original's (one file; anything after it ignored)."""
    p = argparse.ArgumentParser(
        prog="heat-config-notify",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Send one deployment's result to Heat over the signal transport its inputs name\n"
        "(deploy_signal_transport, deploy_signal_id, ...). The signal data (deploy_stdout,\n"
        "deploy_stderr, deploy_status_code and outputs) is read as JSON from standard input.\n"
        "Exit 0 when the signal was accepted (or refused for good), 75 when it could not be\n"
        "delivered and should be retried.",
        epilog="example:\n  heat-config-notify /var/lib/heat-config/deployed/ID.json "
        "< /var/lib/heat-config/deployed/ID.notify.json",
    )
    p.add_argument("config_file", nargs="?", metavar="DEPLOYMENT_FILE",
                   help="the deployment JSON, as written to the deployed directory")
    return p


def _record_refusal(deployment_file: str, message: str) -> None:
    """Tell the dispatcher's journal (if this file is a deployed marker) that Heat refused the signal."""
    directory, name = os.path.split(os.path.abspath(deployment_file))
    if not name.endswith(".json"):
        return
    journal = Journal(directory)
    record = journal.load(name[: -len(".json")])
    if record is None:
        return
    record.signal, record.signal_error, record.step = SIGNAL_REFUSED, message, SIGNALLED
    journal.save(record)


def send_with_retry(transports: List[Any], data: Any, budget_s: float) -> Optional[SignalFailed]:
    """Deliver on every route, retrying what may pass within ``budget_s``; the failure left, if any."""
    deadline = time.monotonic() + budget_s
    for transport in transports:
        backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_CAP_S)
        while True:
            try:
                transport.send(data)
                LOG.debug("Signal accepted (%s)", transport.name)
                break
            except SignalFailed as exc:
                if not exc.retryable:
                    return exc
                delay = backoff.next_delay(exc.retry_after)
                if time.monotonic() + delay > deadline:
                    return exc
                LOG.warning("%s; retrying in %.1f s", exc, delay)
                time.sleep(delay)
    return None


def main(argv: Optional[List[str]] = None, stdin: Any = None) -> int:
    args, chosen = common_flags(sys.argv[1:] if argv is None else argv, TOOL)
    setup_logging(TOOL, level=logging.DEBUG, log_format_choice=chosen)
    stdin = stdin or sys.stdin
    opts, _ignored = build_parser().parse_known_args(args)  # --help exits here, before stdin is read
    if not opts.config_file:
        LOG.error(USAGE)
        return 1
    if stdin.isatty():
        LOG.info("Reading the signal data (JSON) from standard input; end it with Ctrl-D")
    try:
        signal_data = loads_json(getattr(stdin, "buffer", stdin).read(), "stdin")
    except ValueError as exc:
        LOG.warning("No valid json found on stdin (%s)", exc)
        signal_data = {}
    conf_file = opts.config_file
    if not os.path.exists(conf_file):
        LOG.error("No config file %s", conf_file)
        LOG.error(USAGE)
        return 1
    try:
        deployment = loads_json(read_bytes(conf_file), conf_file)
    except OSError as exc:
        LOG.error("%s: cannot read the deployment: %s", conf_file, exc.strerror)
        return 1
    except ValueError as exc:
        LOG.error("Cannot read the deployment: %s", exc)
        return 1
    if not isinstance(deployment, dict):
        LOG.error("%s: not a deployment JSON object", conf_file)
        return 1
    problem = inputs_problem(deployment)
    if problem:  # the dispatcher finds no signal route in such inputs either: it never runs this for them
        LOG.error("%s: %s: %s, so it names no signal route", conf_file, deployment_label(deployment, "in it"), problem)
        return 1
    register_input_secrets(deployment)
    transports = routes(input_values(deployment), client_for(os.environ))
    if not transports:
        LOG.debug("No signal transport in %s (NO_SIGNAL); nothing to send", conf_file)
        return 0
    failure = send_with_retry(transports, signal_data, retry_budget(os.environ))
    if failure is None:
        return 0
    if not failure.retryable:
        LOG.error("Signal refused for good: %s", failure)
        _record_refusal(conf_file, str(failure))
        return 0
    LOG.error("Signal not delivered, try again later: %s", failure)
    return EX_TEMPFAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

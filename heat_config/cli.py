"""``heat-config``: the dispatcher (default), plus ``status``, ``run`` and ``hook``.

With no subcommand it is the dispatcher that os-refresh-config's ``55-heat-config``
runs (SPEC §6); the subcommands are our additions, and ``hook`` is ``heat-config-hook``.
"""
from __future__ import annotations

import argparse
import difflib
import json
import logging
import math
import sys
from typing import List, Optional

from agent_common.atomic import hold_sigterm_during_writes
from agent_common.cli import add_subparser, new_parser
from agent_common.logs import setup_logging
from heat_config import hook_cli, run_locally, status
from heat_config.dispatch import DispatchSettings
from heat_config.dispatch import main as dispatch_main

COMMANDS = ("dispatch", "status", "run", "hook")
TOOL = "heat-config"


def _parser() -> argparse.ArgumentParser:
    parser = new_parser(
        "heat-config",
        "Run Heat software deployments through their hooks and signal the results to Heat.",
        ["heat-config                          # process the deployments (what 55-heat-config runs)",
         "heat-config status --wait --timeout 600",
         "heat-config --log-format json run hello.yaml --input name=world"],
    )
    sub = parser.add_subparsers(dest="command")
    d = add_subparser(sub, "dispatch", ["heat-config dispatch --signals-only"],
                      help="process the deployments file (the default; what 55-heat-config runs)")
    d.add_argument("--signals-only", action="store_true",
                   help="only retry signals still pending from earlier runs; run no hook")
    d.add_argument("--metrics-file", metavar="PATH",
                   help="after the run, write metrics in the Prometheus text format to PATH "
                        "(default: $OS_CONFIG_AGENTS_METRICS_FILE; none when unset)")
    s = add_subparser(sub, "status", ["heat-config status", "heat-config status --json", "heat-config status ID"],
                      help="show what happened to each deployment; runs nothing")
    s.add_argument("id", nargs="?", metavar="ID", help="show this deployment's whole record")
    s.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    s.add_argument("--wait", action="store_true",
                   help="block until every current deployment is finished and signalled; "
                        "exit 0 if all succeeded, 1 if any failed, 2 on time-out")
    s.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S seconds")
    r = add_subparser(sub, "run", ["heat-config run hello.yaml --input name=world"],
                      help="run one SoftwareConfig or deployment file here, without Heat or signal")
    r.add_argument("file", help="SoftwareConfig or deployment, JSON or YAML")
    r.add_argument("--input", action="append", default=[], metavar="NAME=VALUE", help="an input value (repeatable)")
    r.add_argument("--action", default="CREATE", help="deploy_action to run with (default CREATE)")
    r.add_argument("--format", choices=("json", "text"), default="json",
                   help="json (default): one JSON document; text: deploy_stdout and deploy_stderr as text, "
                        "then the outputs and the status")
    h = add_subparser(sub, "hook", ["heat-config hook script < deployment.json"],
                      help="run the hook of GROUP on the deployment JSON on stdin (heat-config-hook)")
    h.add_argument("group")
    return parser


def unknown_command(word: str) -> str:
    """One line for a mistyped subcommand (issue 15 item 9): the known ones and the closest."""
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = "; did you mean %r?" % close[0] if close else ""
    return "heat-config: unknown subcommand %r; the subcommands are %s (none: dispatch)%s" % (
        word, ", ".join(COMMANDS), hint)


def dispatch(signals_only: bool = False, log_format: Optional[str] = None, metrics_file: Optional[str] = None) -> int:
    """The dispatcher, as 55-heat-config runs it (SPEC §6)."""
    hold_sigterm_during_writes()
    setup_logging(TOOL, level=logging.DEBUG, log_format_choice=log_format)
    return dispatch_main(DispatchSettings.from_environ(metrics_file=metrics_file), signals_only=signals_only)


def main(argv: Optional[List[str]] = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:  # the common case, every os-refresh-config run
        return dispatch()
    if args_list[0] not in COMMANDS and not args_list[0].startswith("-"):
        print(unknown_command(args_list[0]), file=sys.stderr)
        return 2
    if args_list[0] not in COMMANDS and args_list[0].split("=")[0] not in ("-h", "--help", "--version", "--log-format"):
        args_list.insert(0, "dispatch")  # options alone are the dispatcher's (``heat-config --signals-only``)
    args = _parser().parse_args(args_list)

    if args.command == "hook":
        return hook_cli.main([args.group])

    settings = DispatchSettings.from_environ()
    if args.command == "status":
        if args.timeout is not None and not args.wait:
            print("heat-config status: --timeout needs --wait", file=sys.stderr)
            return 2
        if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout >= 0):
            print("heat-config status: --timeout must be a finite number of seconds >= 0, not %g" % args.timeout,
                  file=sys.stderr)
            return 2
        return status.main(settings.config_file, settings.deployed_dir, sys.stdout, sys.stderr, dep_id=args.id,
                           as_json=args.json, wait=args.wait, timeout=args.timeout)

    setup_logging(TOOL, level=logging.DEBUG, log_format_choice=args.log_format)
    if args.command == "run":
        try:
            data, code = run_locally.run(args.file, args.input, args.action, live=sys.stderr.isatty())
        except run_locally.UsageError as exc:
            print("heat-config run: %s" % exc, file=sys.stderr)
            return 1
        if args.format == "text":
            sys.stdout.write(run_locally.render_text(data))
        else:
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
        return code

    return dispatch(getattr(args, "signals_only", False), args.log_format, getattr(args, "metrics_file", None))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

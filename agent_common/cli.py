"""The command-line parts every tool shares (SPEC §12.17, §12.19): ``--version``, ``--log-format``, examples.

One helper, so that every console script answers ``--version`` the same way, takes
the same ``--log-format`` and ends its ``--help`` with examples.  Commands whose
arguments the original parses by hand (dib-run-parts, heat-config-notify,
heat-config-rebuild-deployed, the one-word call of heat-config-hook) take the same
two options through :func:`common_flags` without argparse.

On the idle agent's and the hook start paths: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import Any, List, Optional, Sequence, Tuple

DISTRIBUTION = "os-config-agents"
LOG_FORMAT_HELP = ("log line format: text (default) or json, one JSON object per line; default: "
                   "$OS_CONFIG_AGENTS_LOG_FORMAT, which is passed on to every command this one starts")


def version_text() -> str:
    """``os-config-agents X.Y.Z``, the version from the installed package's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version(DISTRIBUTION)
    except PackageNotFoundError:
        number = "unknown"
    return "%s %s" % (DISTRIBUTION, number)


def _version_action() -> Any:
    """argparse's action for ``--version``; the metadata is read only when asked (importlib.metadata is slow)."""
    import argparse

    class Version(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: Optional[str] = None) -> None:
            sys.stdout.write(version_text() + "\n")
            parser.exit()

    return Version


def epilog(examples: Sequence[str]) -> str:
    """The ``--help`` ending: each example as an indented line (a comment line is kept as written)."""
    return "examples:\n" + "\n".join("  " + line for line in examples)


def new_parser(prog: str, description: str, examples: Sequence[str], *, log_format: bool = True,
               formatter_class: Any = None) -> argparse.ArgumentParser:
    """An ArgumentParser with the shared options and the examples as its epilog.

    ``log_format`` False leaves ``--log-format`` out, for a command that declares it
    itself (os-collect-config's option table).  ``formatter_class`` must keep the
    epilog's lines (a subclass of argparse.RawDescriptionHelpFormatter).
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog(examples),
        formatter_class=formatter_class or argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_version_action(), nargs=0, help="show the version and exit")
    if log_format:
        parser.add_argument("--log-format", choices=("text", "json"), default=None, help=LOG_FORMAT_HELP)
    return parser


def add_subparser(subparsers: Any, name: str, examples: Sequence[str], **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand's parser whose ``--help`` ends with its examples too."""
    import argparse

    return subparsers.add_parser(name, epilog=epilog(examples), formatter_class=argparse.RawDescriptionHelpFormatter,
                                 **kwargs)


def common_flags(argv: Sequence[str], prog: str) -> Tuple[List[str], Optional[str]]:
    """For a hand-parsed command: answer ``--version`` (exit 0), take ``--log-format X`` out of ``argv``.

    Returns the other arguments and the chosen format (None: not given).  A bad
    format is a usage error, exit 2, as argparse's would be.
    """
    rest: List[str] = []
    chosen: Optional[str] = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--version":
            sys.stdout.write(version_text() + "\n")
            raise SystemExit(0)
        if arg == "--log-format" or arg.startswith("--log-format="):
            value = arg.split("=", 1)[1] if "=" in arg else (args.pop(0) if args else "")
            if value not in ("text", "json"):
                sys.stderr.write("%s: error: argument --log-format: invalid choice: %r (choose from 'text', 'json')\n"
                                 % (prog, value))
                raise SystemExit(2)
            chosen = value
            continue
        rest.append(arg)
    return rest, chosen

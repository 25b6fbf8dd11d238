"""``os-collect-config``: the command line (SPEC §2.1).

Flags are spelled as oslo.config spells them for the original: global options with
their declared dashes, collector options as ``--<group>-<declared name>``, booleans
with ``--no<name>``.  argparse records every value as an event in argument order,
so that ``--config-file`` applies where it appears (config.resolve does the rest).

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys

from agent_common.cli import new_parser
from os_collect_config import collectors as registry
from os_collect_config.collectors.base import Option
from os_collect_config.config import (
    ALIASES, DEFAULT_GROUP, FILE_ONLY, GLOBAL_OPTIONS, KEYSTONE_OPTIONS, LOG_OPTIONS, PROG,
    CliEvent, ConfigError, GroupLoader, OptionTable, Settings, check, convert, resolve, secret_warnings,
)

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional, Sequence

LOG = logging.getLogger("os-collect-config")

EXAMPLES = (
    "os-collect-config --check-config --config-file /etc/os-collect-config.conf",
    "os-collect-config --print --local-path /var/lib/os-collect-config/local-data local",
    "os-collect-config --command os-refresh-config --log-format json",
)


class _Record(argparse.Action):
    """Appends one CliEvent (in argument order) instead of storing an attribute."""

    def __init__(self, option_strings: List[str], dest: str, group: str = DEFAULT_GROUP, key: str = "",
                 kind: str = "set", **kwargs: Any) -> None:
        self.group, self.key, self.kind = group, key, kind
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        value = self.const if self.nargs == 0 else values
        namespace.events.append(CliEvent(self.kind, self.group, self.key, value, option_string or ""))


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter (examples kept as written) without its import of shutil for the terminal width."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        if kwargs.get("width") is None:
            try:
                columns = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stdout.fileno()).columns)
            except (OSError, ValueError):
                columns = 80
            kwargs["width"] = columns - 2
        super().__init__(prog, **kwargs)


def _typed(opt: Option):
    def parse(text: str) -> Any:
        try:
            return convert(opt, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    parse.__name__ = opt.type  # argparse names the type in its error message
    return parse


def _add(parser: argparse._ActionsContainer, opt: Option, group: str, prefix: str) -> None:
    names = [opt.name] + list(ALIASES.get(opt.name, ()))
    help_text = (opt.help or opt.name).replace("%", "%%")
    if opt.secret:
        help_text += " Secret: prefer the config file, the command line is visible in ps."
    if opt.type == "bool":
        flags = ["--%s%s" % (prefix, n) for n in names] + (["-" + opt.short] if opt.short else [])
        parser.add_argument(*flags, action=_Record, nargs=0, const=True, group=group, key=opt.key,
                            default=argparse.SUPPRESS, help="%s (default: %s)" % (help_text, opt.default))
        parser.add_argument(*["--%sno%s" % (prefix, n) for n in names], action=_Record, nargs=0, const=False,
                            group=group, key=opt.key, default=argparse.SUPPRESS,
                            help="The inverse of --%s%s." % (prefix, opt.name))
        return
    flags = ["--%s%s" % (prefix, n) for n in names] + (["-" + opt.short] if opt.short else [])
    if opt.default not in (None, [], ""):
        shown = " ".join(opt.default) if isinstance(opt.default, list) else str(opt.default)
        help_text += " (default: %s)" % shown.replace("%", "%%")
    if opt.type == "multi":
        help_text += " May be repeated."
    parser.add_argument(*flags, action=_Record, group=group, key=opt.key, default=argparse.SUPPRESS,
                        type=str if opt.type in ("str", "multi") else _typed(opt),
                        metavar=opt.key.upper(), help=help_text)


def option_table() -> OptionTable:
    """Option groups of every registered collector (loaded on use), plus the keystone pseudo-group (SPEC §2.6.2)."""
    loaders: Dict[str, GroupLoader] = {name: functools.partial(registry.options, name) for name in registry.REGISTRY}
    loaders["keystone"] = lambda: KEYSTONE_OPTIONS
    return OptionTable(loaders)


def groups_mentioned(argv: Sequence[str], table: OptionTable) -> List[str]:
    """The groups whose flags the arguments may use (abbreviations included); all of them for --help."""
    names = [a[2:].split("=", 1)[0] for a in argv if a.startswith("--")]
    if "-h" in argv or any(n and "help".startswith(n) for n in names):
        return [g for g in table if g != DEFAULT_GROUP]
    return [g for g in table if g != DEFAULT_GROUP and any(n and (n.startswith(g) or g.startswith(n)) for n in names)]


def build_parser(table: OptionTable, groups: Sequence[str]) -> argparse.ArgumentParser:
    parser = new_parser(
        PROG,
        "Collect metadata from the configured sources, cache it, and run a command when it "
        "changes (or print it as JSON when no command is given).",
        EXAMPLES, log_format=False, formatter_class=_Formatter,
    )
    parser.add_argument("--check-config", action="store_true", default=False,
                        help="Read the configuration as a run would, print the effective settings (secrets "
                             "masked) and every warning, and exit: 1 if there is an error, else 0. Runs no "
                             "collector.")
    parser.add_argument("--config-file", action=_Record, kind="file", metavar="PATH", default=argparse.SUPPRESS,
                        help="Path to a config file to use; may be repeated, later files win. Default: the "
                             "first existing of ~/os-collect-config.conf and /etc/os-collect-config.conf.")
    parser.add_argument("--config-dir", action=_Record, kind="dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="Directory whose *.conf files are read in sorted order after the config files. "
                             "Default: the first existing of ~/os-collect-config.conf.d and "
                             "/etc/os-collect-config.conf.d.")
    for opt in GLOBAL_OPTIONS:
        if opt.name == "collectors":
            parser.add_argument("collectors", nargs="*", metavar="COLLECTOR", help=opt.help)
        else:
            _add(parser, opt, DEFAULT_GROUP, "")
    logging_group = parser.add_argument_group("logging")
    for opt in LOG_OPTIONS:
        if opt.key not in FILE_ONLY:
            _add(logging_group, opt, DEFAULT_GROUP, "")
    for group in groups:
        section = parser.add_argument_group("[%s]" % group)
        for opt in table[group].values():
            _add(section, opt, group, group + "-")
    return parser


def parse(argv: Sequence[str], home: Optional[str] = None) -> Settings:
    """Settings from the arguments (without the program name) and the config files they lead to."""
    table = option_table()
    parser = build_parser(table, groups_mentioned(argv, table))
    namespace = parser.parse_args(list(argv), argparse.Namespace(events=[]))
    settings = resolve(namespace.events, namespace.collectors, table, home)
    settings.check_only = namespace.check_config
    return settings


def setup_logging(settings: Settings) -> None:
    """oslo.log's options on our one logging setup; logs go to stderr unless a file or the journal is chosen."""
    from agent_common import logs

    opts = settings.logging
    log_file = opts["log_file"]
    if opts["log_dir"]:
        log_file = os.path.join(opts["log_dir"], log_file or "%s.log" % PROG)
    use_stream = opts["use_stderr"] if opts["use_stderr"] is not None else not (log_file or opts["use_journal"])
    try:
        logs.setup_logging(
            PROG,
            level=logging.DEBUG if opts["debug"] else logging.INFO,
            datefmt=opts["log_date_format"],
            log_format_choice=opts["log_format"] or ("json" if opts["use_json"] else None),
            log_file=log_file,
            use_stream=use_stream,
            journal=opts["use_journal"],
            syslog_facility=opts["syslog_log_facility"] if opts["use_syslog"] else None,
        )
    except (OSError, ValueError) as exc:
        raise ConfigError("logging: %s" % exc) from exc
    if opts["log_config_append"]:
        import configparser
        from logging import config as logging_config

        try:
            logging_config.fileConfig(opts["log_config_append"], disable_existing_loggers=False)
        except (OSError, KeyError, ValueError, configparser.Error) as exc:
            raise ConfigError("--log-config-append %s: %s" % (opts["log_config_append"], exc)) from exc
        for handler in logging.getLogger().handlers:  # the file's handlers redact secrets too
            handler.addFilter(logs.RedactingFilter())


def warn_about_secrets(settings: Settings) -> None:
    """Say where a secret is exposed (weakness 20)."""
    for warning in secret_warnings(settings):
        LOG.warning("%s", warning)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (SPEC §2.18)."""
    full_argv = list(sys.argv if argv is None else [PROG] + list(argv))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # die when stdout goes away, so systemd restarts us
    from agent_common.atomic import hold_sigterm_during_writes
    from agent_common.logs import redact, register_secrets

    hold_sigterm_during_writes()

    try:
        settings = parse(full_argv[1:])
        register_secrets(settings.secret_values)  # before anything can log or fail
        if settings.print_cachedir:
            print(settings.cachedir)
            return 0
        if settings.check_only:
            from os_collect_config.check import check_config

            return check_config(settings, option_table(), sys.stdout, sys.stderr)
        check(settings, registry.REGISTRY)
        setup_logging(settings)
        for warning in settings.warnings:
            LOG.warning("%s", warning)
        warn_about_secrets(settings)
        if settings.force:
            settings.one_time = True
        from os_collect_config.loop import Agent

        return Agent(settings, full_argv).run()
    except ConfigError as exc:
        sys.stderr.write("%s: error: %s\n" % (PROG, redact(str(exc))))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

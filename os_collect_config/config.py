"""The option model of os-collect-config and its oslo.config-compatible INI files (SPEC §2.1, §2.2).

The original's spellings, discovery, precedence and types without oslo.config: a
small INI reader (``=`` or ``:``, ``#``/``;`` comments, indented continuation lines,
surrounding quotes stripped, repeated keys for multi-valued options) and a resolver
that applies config files, config directories and command-line values in the
original's order.  Every mistake becomes a ``ConfigError`` whose one-line message
names the file, line and option, so ``main`` never shows a traceback.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import collections.abc
import os
import re

from agent_common.documents import NotRegularFile, decode_text, read_bytes
from agent_common.record import Record, fresh
from os_collect_config.collectors.base import Option

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

PROG = "os-collect-config"
DEFAULT_GROUP = "DEFAULT"
#: Default config file names, first existing wins (SPEC §2.1.4); ``~`` is the caller's home.
CONFIG_FILE_NAME = "os-collect-config.conf"
CONFIG_DIR_NAME = "os-collect-config.conf.d"
SYSTEM_CONFIG_ROOT = "/etc"

DEFAULT_COLLECTORS = ["heat_local", "ec2", "cfn", "heat", "request", "local", "zaqar"]

GLOBAL_OPTIONS: Tuple[Option, ...] = (
    Option("command", short="c",
           help="Command to run on metadata changes. If specified, os-collect-config will continue to run "
                "until killed. If not specified, os-collect-config will print the collected data as a json "
                "map and exit."),
    Option("cachedir", default="/var/lib/os-collect-config",
           help="Directory in which to store local cache of metadata."),
    Option("backup-cachedir", default="/var/run/os-collect-config",
           help="Copy cache contents to this directory as well."),
    Option("collectors", type="multi", default=list(DEFAULT_COLLECTORS),
           help="List the collectors to use. When command is specified the collections will be emitted in "
                "the order given by this option. (default: %s)" % " ".join(DEFAULT_COLLECTORS)),
    Option("one-time", type="bool", default=False,
           help="Exit after one execution of command. Implied if no command is specified."),
    Option("min-polling-interval", type="float", default=1.0,
           help="When running continuously, pause a minimum of this many seconds between collecting data; "
                "used after a change, growing back to --polling-interval."),
    Option("polling-interval", type="float", default=30.0, short="i",
           help="When running continuously, pause a maximum of this many seconds between collecting data."),
    Option("print-cachedir", type="bool", default=False,
           help="Print out the value of cachedir and exit immediately."),
    Option("force", type="bool", default=False,
           help="Run the command even if nothing has changed. Implies --one-time."),
    Option("print", type="bool", default=False, dest="print_only",
           help="Query normally, print the resulting configs as a json map, and exit immediately without "
                "running command if it is configured."),
    Option("deployment-key", type="multi", default=["deployments"],
           help="Key(s) to explode into multiple collected outputs (OS::Heat::StructuredDeployment "
                "metadata); only exploded if seen at the root of the metadata."),
    Option("splay", type="float", default=0.0,
           help="Sleep a random time of up to this many seconds before the first collection, so that "
                "agents started together do not poll together. Ignored with --one-time or --force."),
    Option("command-timeout", type="float", default=None,
           help="Kill the command (its whole process group) if it runs longer than this many seconds; "
                "it then counts as failed and is retried on the next poll. Default: no limit."),
    Option("metrics-file", help="After every poll, write metrics in the Prometheus text format to this file "
                                "(default: $OS_CONFIG_AGENTS_METRICS_FILE; none when unset)."),
)

#: The oslo.log options the original accepts (SPEC §2.2); ``use_stderr`` is file-only there.
LOG_OPTIONS: Tuple[Option, ...] = (
    Option("debug", type="bool", default=False, short="d", help="Log at DEBUG level."),
    Option("log-file", help="Also write logs to this file (alias --logfile)."),
    Option("log-dir", help="Directory for --log-file; alone, logs go to <log-dir>/os-collect-config.log "
                           "(alias --logdir)."),
    Option("log-config-append", help="A logging.config file (fileConfig format) applied after the defaults "
                                     "(alias --log-config)."),
    Option("log-date-format", default="%Y-%m-%d %H:%M:%S", help="strftime format of the log time stamps."),
    Option("use-syslog", type="bool", default=False, help="Also send logs to syslog (/dev/log)."),
    Option("use-journal", type="bool", default=False, help="Send logs to the systemd journal."),
    Option("syslog-log-facility", default="LOG_USER", help="Syslog facility, for example LOG_LOCAL0."),
    Option("use-json", type="bool", default=False, help="Write log records as JSON lines (as --log-format json)."),
    Option("log-format", help="Log line format: text or json (one JSON object per line); default: "
                              "$OS_CONFIG_AGENTS_LOG_FORMAT, else json with --use-json, else text. The format is "
                              "passed on to the command."),
    Option("use-stderr", type="bool", default=None,
           help="Log to stderr (config file only); default: yes unless a log file or the journal is used."),
)
#: oslo.log and oslo.config options the original accepts in a file that have no effect here: no warning for them.
ACCEPTED_UNUSED = frozenset({
    "config_file", "config_dir", "config_source", "default_log_levels", "fatal_deprecations", "instance_format",
    "instance_uuid_format", "log_color", "log_rotate_interval", "log_rotate_interval_type", "log_rotation_type",
    "logging_context_format_string", "logging_debug_format_suffix", "logging_default_format_string",
    "logging_exception_prefix", "logging_user_identity_format", "max_logfile_count", "max_logfile_size_mb",
    "publish_errors", "rate_limit_burst", "rate_limit_except_level", "rate_limit_interval", "verbose",
    "watch_log_file",
})
#: Options a config file may set but the command line may not (as oslo.log declares them).
FILE_ONLY = frozenset({"use_stderr"})
#: Deprecated spellings accepted both on the command line and in files.
ALIASES: Dict[str, Tuple[str, ...]] = {
    "log-file": ("logfile",),
    "log-dir": ("logdir",),
    "log-config-append": ("log-config",),
}

KEYSTONE_OPTIONS: Tuple[Option, ...] = (
    Option("cache_dir", help="A directory to store keystone auth tokens."),
    Option("cache_ttl", type="int", default=1800, help="Seconds to store auth references in the cache."),
)


class ConfigError(Exception):
    """A user mistake in a config file or option: reported as one line, exit status 1."""


class Settings(Record):
    """Everything the loop needs, resolved from files, directories and the command line."""

    command: Optional[str]
    cachedir: str
    backup_cachedir: str
    collectors: List[str]
    one_time: bool
    min_polling_interval: float
    polling_interval: float
    print_cachedir: bool
    force: bool
    print_only: bool
    deployment_key: List[str]
    splay: float
    command_timeout: Optional[float]
    logging: Dict[str, Any]
    #: Per-collector option values keyed by ``Option.key``, defaults filled in; ``keystone`` too.
    groups: Dict[str, Dict[str, Any]]
    #: --metrics-file (SPEC §12.15); $OS_CONFIG_AGENTS_METRICS_FILE is read where the metrics are written.
    metrics_file: Optional[str] = None
    #: Config files read, in order.
    config_files: List[str] = fresh(list)
    #: What a change of configuration is detected on (files that may appear later included).
    watch: ConfigWatch = fresh(lambda: ConfigWatch([], []))
    #: Secret options given on the command line (visible in ps), by flag.
    secrets_on_cli: List[str] = fresh(list)
    #: Config files holding a secret that other users can read.
    exposed_secret_files: List[str] = fresh(list)
    #: Every secret value, to register for log redaction.
    secret_values: List[str] = fresh(list)
    #: True when the collectors list was chosen by the user rather than defaulted.
    collectors_explicit: bool = False
    #: "group.key" → where its value was set ("file:line" or the flag), for error messages.
    origins: Dict[str, str] = fresh(dict)
    #: What the config files hold that the original would silently ignore (SPEC §12.16), one line each.
    warnings: List[str] = fresh(list)
    #: --check-config: print the settings and warnings, run nothing.
    check_only: bool = False

    def origin(self, group: str, key: str, value: Optional[str] = None) -> str:
        """`` (set at <where>)`` for an option (or one value of a multi option) set by the user, else empty."""
        where = self.origins.get(_origin_key(group, key, value))
        return " (set at %s)" % where if where else ""


class ConfigWatch(Record):
    """Config files and directories whose content decides a re-exec (SPEC §2.17, weakness 17).

    Unlike the original, which hashed only the files that existed at start-up, this
    includes candidate files that do not exist yet and every ``*.conf`` of the
    config directories, so a file rendered later by os-apply-config counts.
    """

    files: List[str]
    dirs: List[str]

    def __init__(self, files: List[str], dirs: List[str]) -> None:
        super().__init__(files, dirs)
        #: Taken before any file is read, so a change made while the agent starts up is still seen.
        self.baseline = self.fingerprint()

    def fingerprint(self) -> "Tuple[Tuple[str, Optional[bytes]], ...]":
        """Every watched path with its content (None when absent); config files are small."""
        snapshot: List[Tuple[str, Optional[bytes]]] = []
        for path in self.files + [p for d in self.dirs for p in _dir_conf_files(d)]:
            try:
                snapshot.append((path, read_bytes(path)))  # a FIFO is refused, not waited on
            except OSError:
                snapshot.append((path, None))
        return tuple(snapshot)


# -- INI files ------------------------------------------------------------------------------

class IniValue(Record):
    """One assignment of an INI file and where it was made, for error messages."""

    section: str
    key: str
    value: str
    path: str
    lineno: int
    #: The line of the section header, for a warning about the section.
    section_lineno: int = 0

    def where(self) -> str:
        return "%s:%d" % (self.path, self.lineno)


def parse_ini(path: str) -> List[IniValue]:
    """Every assignment of ``path`` in order, with the syntax oslo.config's parser accepts."""
    try:
        lines = decode_text(read_bytes(path), path).splitlines()
    except NotRegularFile:  # a FIFO would block the agent for ever
        raise ConfigError("cannot read config file %s: not a regular file" % path) from None
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, getattr(exc, "strerror", None) or exc)) from exc
    out: List[IniValue] = []
    section: Optional[str] = None
    section_lineno = 0
    pending: Optional[IniValue] = None
    parts: List[str] = []

    def fail(lineno: int, why: str, line: str) -> ConfigError:
        return ConfigError("%s:%d: %s: %r" % (path, lineno, why, line.strip()))

    def flush() -> None:
        nonlocal pending, parts
        if pending is not None:
            pending.value = "\n".join(parts)
            out.append(pending)
        pending, parts = None, []

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line:
            flush()
            continue
        if line.startswith((" ", "\t")):
            if pending is None:
                raise fail(lineno, "unexpected continuation line", line)
            parts.append(line.lstrip())
            continue
        flush()
        if line.startswith("["):
            if not line.endswith("]") or len(line) <= 2:
                raise fail(lineno, "invalid section header", line)
            section, section_lineno = line[1:-1], lineno
        elif line.startswith(("#", ";")):
            continue
        else:
            colon, equal = line.find(":"), line.find("=")
            if colon < 0 and equal < 0:
                raise fail(lineno, "no '=' or ':' in assignment", line)
            cut = equal if colon < 0 or 0 <= equal < colon else colon
            key, value = line[:cut].strip(), line[cut + 1:].strip()
            if not key:
                raise fail(lineno, "empty key", line)
            if section is None:
                raise fail(lineno, "assignment before any [section]", line)
            if value and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            pending, parts = IniValue(section, key, "", path, lineno, section_lineno), [value]
    flush()
    return out


def _dir_conf_files(directory: str) -> List[str]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names if n.endswith(".conf") and not n.startswith("."))


def default_config_files(home: Optional[str] = None) -> List[str]:
    """The candidates for the one default config file, in discovery order."""
    home = home if home is not None else os.path.expanduser("~")
    return [os.path.join(home, CONFIG_FILE_NAME), os.path.join(SYSTEM_CONFIG_ROOT, CONFIG_FILE_NAME)]


def default_config_dirs(home: Optional[str] = None) -> List[str]:
    home = home if home is not None else os.path.expanduser("~")
    return [os.path.join(home, CONFIG_DIR_NAME), os.path.join(SYSTEM_CONFIG_ROOT, CONFIG_DIR_NAME)]


# -- values ---------------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def convert(opt: Option, text: str) -> Any:
    """``text`` as ``opt``'s type; ValueError with a short reason when it is not one."""
    kind = opt.type
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("expected a boolean (true/false, yes/no, on/off, 1/0), got %r" % text)
    if kind in ("float", "int"):
        # Every number option is seconds or a count: a negative or non-finite one is a mistake, which
        # used to pass as "no limit" (command_timeout = -1 or nan) or to break the loop's arithmetic.
        try:
            value = float(text) if kind == "float" else int(text)
        except ValueError:
            raise ValueError("expected %s number, got %r" % ("a" if kind == "float" else "an integer", text)) from None
        if not (0 <= value < float("inf")):
            raise ValueError("expected %s >= 0, got %r" % ("a finite number" if kind == "float" else "an integer",
                                                           text))
        return value
    if kind == "url":
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        if not (parts.scheme and parts.netloc):
            raise ValueError("expected a URL with a scheme and a host, got %r" % _mask_query(text))
    return text


def _mask_query(url: str) -> str:
    return url.split("?", 1)[0] + ("?..." if "?" in url else "")


#: string.Template's syntax with oslo.config's identifier pattern (case-insensitive, dots allowed).
_TEMPLATE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][._a-z0-9]*)|{(?P<braced>[_a-z][._a-z0-9]*)})",
                       re.IGNORECASE)


# -- resolution -----------------------------------------------------------------------------

class CliEvent(Record):
    """One thing the command line did, in argument order: set a value, or read a file or directory."""

    kind: str  # "set", "file" or "dir"
    group: str = DEFAULT_GROUP
    key: str = ""
    value: Any = None
    flag: str = ""


#: (collections.abc generics: the run time does not import typing.)
GroupLoader = collections.abc.Callable[[], collections.abc.Sequence[Option]]


class OptionTable(collections.abc.Mapping[str, dict[str, Option]]):
    """{group: {file key (and alias keys): Option}}; a collector group's options are loaded on first use.

    Loading a group imports its collector module, so a run that never mentions a
    collector does not pay for importing it (start-up time is benchmarked).
    """

    def __init__(self, loaders: Dict[str, GroupLoader]) -> None:
        self._loaders = loaders
        default: Dict[str, Option] = {}
        for opt in GLOBAL_OPTIONS + LOG_OPTIONS:
            default[opt.key] = opt
            for alias in ALIASES.get(opt.name, ()):
                default[alias.replace("-", "_")] = opt
        self._loaded: Dict[str, Dict[str, Option]] = {DEFAULT_GROUP: default}

    def __getitem__(self, group: str) -> Dict[str, Option]:
        if group not in self._loaded:
            if group not in self._loaders:
                raise KeyError(group)
            self._loaded[group] = {opt.key: opt for opt in self._loaders[group]()}
        return self._loaded[group]

    def __iter__(self) -> Iterator[str]:
        return iter([DEFAULT_GROUP] + list(self._loaders))

    def __len__(self) -> int:
        return 1 + len(self._loaders)

    def loaded(self) -> List[str]:
        return [g for g in self._loaded if g != DEFAULT_GROUP]

    def load(self, groups: Iterable[str]) -> None:
        """Load the named groups that exist (a collector that runs gets its defaults even if never mentioned)."""
        for group in groups:
            if group in self._loaders:
                self[group]


class Resolver:
    """Applies sources in order; single values: last wins; multi values: files first, then the command line."""

    def __init__(self, table: "OptionTable") -> None:
        self.table = table
        self.single: Dict[Tuple[str, str], Any] = {}
        self.file_multi: Dict[Tuple[str, str], List[Any]] = {}
        self.cli_multi: Dict[Tuple[str, str], List[Any]] = {}
        self.files_read: List[str] = []
        self.secret_files: List[str] = []
        #: Where each option's value came from ("file:line" or "--flag"), for error messages.
        self.origins: Dict[str, str] = {}
        self.secret_values: List[str] = []
        #: Unknown sections and options of the files read (SPEC §12.16).
        self.warnings: List[str] = []

    def apply_file(self, path: str) -> None:
        groups_by_lower = {g.lower(): g for g in self.table if g != DEFAULT_GROUP}
        holds_secret = False
        unknown_sections: Set[str] = set()
        for item in parse_ini(path):
            group = DEFAULT_GROUP if item.section == DEFAULT_GROUP else groups_by_lower.get(item.section.lower())
            if group is None:  # ignored, as oslo.config does; said once per section (SPEC §12.16)
                if item.section not in unknown_sections:
                    unknown_sections.add(item.section)
                    self.warnings.append(self._unknown_section(item))
                continue
            opt = self.table[group].get(item.key)
            if opt is None:
                # ignored, as oslo.config does with unknown keys and dashed spellings (SPEC §2.1.2)
                if item.key.replace("-", "_") not in ACCEPTED_UNUSED:
                    self.warnings.append(self._unknown_key(item, group))
                continue
            try:
                value = convert(opt, item.value) if opt.type != "multi" else item.value
            except ValueError as exc:
                raise ConfigError("%s: [%s] %s: %s" % (item.where(), item.section, item.key, exc)) from exc
            if opt.secret and value:
                holds_secret = True
                self.secret_values.append(value)
            slot = (group, opt.key)
            self.origins[_origin_key(group, opt.key, value if opt.type == "multi" else None)] = item.where()
            if opt.type == "multi":
                self.file_multi.setdefault(slot, []).append(value)
            else:
                self.single[slot] = value
        self.files_read.append(path)
        if holds_secret:
            self.secret_files.append(path)

    def _unknown_section(self, item: IniValue) -> str:
        known = [g for g in self.table]
        return "%s:%d: unknown section [%s], ignored with everything in it%s" % (
            item.path, item.section_lineno, item.section, _did_you_mean(item.section, known, "[%s]"))

    def _unknown_key(self, item: IniValue, group: str) -> str:
        known = [k for k, opt in self.table[group].items() if group != DEFAULT_GROUP or k == opt.key]
        return "%s: unknown option %s in [%s], ignored%s" % (
            item.where(), item.key, item.section, _did_you_mean(item.key.replace("-", "_"), known, "%s"))

    def apply_dir(self, directory: str) -> None:
        for path in _dir_conf_files(directory):
            self.apply_file(path)

    def apply_cli(self, event: CliEvent) -> None:
        opt = self.table[event.group][event.key]
        slot = (event.group, event.key)
        if opt.secret and event.value:
            self.secret_values.append(event.value)
        self.origins[_origin_key(event.group, event.key, event.value if opt.type == "multi" else None)] = event.flag
        if opt.type == "multi":
            self.cli_multi.setdefault(slot, []).append(event.value)
        else:
            self.single[slot] = event.value

    def value(self, group: str, key: str, depth: int = 0) -> Any:
        opt = self.table[group][key]
        slot = (group, key)
        if opt.type == "multi":
            values = self.file_multi.get(slot, []) + self.cli_multi.get(slot, [])
            values = values if values else list(opt.default or [])
            return [self._substitute(v, group, key, depth) for v in values]
        value = self.single.get(slot, opt.default)
        return self._substitute(value, group, key, depth) if opt.type in ("str", "url") else value

    def _substitute(self, value: Any, group: str, key: str, depth: int) -> Any:
        """oslo.config's ``$name`` / ``${group.name}`` references (``$$`` and ``\\$`` are a dollar sign)."""
        if not isinstance(value, str) or "$" not in value:
            return value
        if depth > 10:
            raise ConfigError("[%s] %s: circular $-reference" % (group, key))

        def lookup(match: "re.Match[str]") -> str:
            name = match.group("named") or match.group("braced")
            if name is None:
                return "$" if match.group("escaped") is not None else match.group(0)
            ref_group, _, ref_key = name.partition(".")
            candidates = [(ref_group, ref_key)] if ref_key else [(group, name), (DEFAULT_GROUP, name)]
            for cand_group, cand_key in candidates:
                real = {g.lower(): g for g in self.table}.get(cand_group.lower(), cand_group)
                if cand_key in self.table.get(real, {}):
                    return str(self.value(real, cand_key, depth + 1))
            shown = "" if self.table[group][key].secret else " " + name  # part of a secret stays hidden
            raise ConfigError("[%s] %s: no such option%s to substitute (write $$ for a literal $)"
                              % (group, key, shown))

        return _TEMPLATE.sub(lookup, value.replace("\\$", "$$"))

    def group_values(self, group: str) -> Dict[str, Any]:
        return {opt.key: self.value(group, opt.key) for opt in self.table[group].values()}


def resolve(
    events: Sequence[CliEvent],
    positional_collectors: Sequence[str],
    table: OptionTable,
    home: Optional[str] = None,
) -> Settings:
    """Apply default or named config files and directories and the command line, in SPEC §2.1.5 order."""
    resolver = Resolver(table)
    explicit_files = [e.value for e in events if e.kind == "file"]
    explicit_dirs = [e.value for e in events if e.kind == "dir"]
    watch = ConfigWatch(list(explicit_files) or default_config_files(home),
                        list(explicit_dirs) or default_config_dirs(home))
    if not explicit_files:  # the first that exists: one that is not a regular file is an error, not skipped
        found = next((p for p in default_config_files(home) if os.path.exists(p) and not os.path.isdir(p)), None)
        if found:
            resolver.apply_file(found)
    if not explicit_dirs:
        found_dir = next((d for d in default_config_dirs(home) if os.path.isdir(d)), None)
        if found_dir:
            resolver.apply_dir(found_dir)
    secrets_on_cli: List[str] = []
    for event in events:
        if event.kind == "file":
            if not os.path.exists(event.value):
                raise ConfigError("--config-file %s: no such file" % event.value)
            resolver.apply_file(event.value)
        elif event.kind == "dir":
            if not os.path.isdir(event.value):
                raise ConfigError("--config-dir %s: no such directory" % event.value)
            resolver.apply_dir(event.value)
        else:
            resolver.apply_cli(event)
            if table[event.group][event.key].secret and event.value:
                secrets_on_cli.append(event.flag)

    glob_values = resolver.group_values(DEFAULT_GROUP)
    file_collectors = resolver.file_multi.get((DEFAULT_GROUP, "collectors"), [])
    collectors = list(positional_collectors) or list(file_collectors) or list(DEFAULT_COLLECTORS)
    table.load(collectors + ["keystone"])
    group_values = {g: resolver.group_values(g) for g in table.loaded()}
    return Settings(
        command=glob_values["command"] or None,
        cachedir=glob_values["cachedir"],
        backup_cachedir=glob_values["backup_cachedir"],
        collectors=collectors,
        one_time=glob_values["one_time"],
        min_polling_interval=glob_values["min_polling_interval"],
        polling_interval=glob_values["polling_interval"],
        print_cachedir=glob_values["print_cachedir"],
        force=glob_values["force"],
        print_only=glob_values["print_only"],
        deployment_key=glob_values["deployment_key"],
        splay=glob_values["splay"],
        command_timeout=glob_values["command_timeout"],
        metrics_file=glob_values["metrics_file"],
        logging={opt.key: glob_values[opt.key] for opt in LOG_OPTIONS},
        groups=group_values,
        config_files=resolver.files_read,
        watch=watch,
        secrets_on_cli=secrets_on_cli,
        exposed_secret_files=[p for p in dict.fromkeys(resolver.secret_files) if _readable_by_others(p)],
        secret_values=resolver.secret_values,
        collectors_explicit=bool(positional_collectors or file_collectors),
        warnings=resolver.warnings + _defaults_note(resolver, positional_collectors, file_collectors),
        origins={**resolver.origins,
                 **{_origin_key(DEFAULT_GROUP, "collectors", c): "the command line" for c in positional_collectors}},
    )


def _defaults_note(resolver: Resolver, positional: Sequence[str], from_files: Sequence[str]) -> List[str]:
    """When an ignored line looks like ``collectors`` and nothing set it, say that the defaults run (issue 15.2)."""
    if positional or from_files or not any("did you mean collectors?" in w for w in resolver.warnings):
        return []
    return ["collectors is not set, so the default collectors run: %s (ec2 polls http://169.254.169.254)"
            % " ".join(DEFAULT_COLLECTORS)]


def _did_you_mean(name: str, known: Sequence[str], shape: str) -> str:
    """``; did you mean <closest>?`` (difflib, case-insensitive), or nothing when no known name is close."""
    import difflib

    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return "; did you mean %s?" % (shape % by_lower[close[0]]) if close else ""


def _origin_key(group: str, key: str, value: Optional[str]) -> str:
    return "%s.%s" % (group, key) if value is None else "%s.%s=%s" % (group, key, value)


def _readable_by_others(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & 0o004)
    except OSError:
        return False


def secret_warnings(settings: Settings) -> List[str]:
    """Where a secret is exposed (weakness 20): on the command line, or in a file others can read."""
    return ["%s was given on the command line, where other users can read it (ps); put it in the config file "
            "instead." % flag for flag in settings.secrets_on_cli] + [
            "Config file %s holds a secret but other users can read it; chmod 600 it." % path
            for path in settings.exposed_secret_files]


def check(settings: Settings, known_collectors: Iterable[str]) -> None:
    """Semantic checks done after parsing: unknown collectors, a local path that is a file (numbers: ``convert``)."""
    known = list(known_collectors)
    unknown = [c for c in settings.collectors if c not in known]
    if unknown:
        where = settings.origin(DEFAULT_GROUP, "collectors", unknown[0])
        raise ConfigError("collectors%s: unknown collector %s (valid: %s)"
                          % (where, ", ".join(repr(u) for u in unknown), " ".join(known)))
    log_format = settings.logging["log_format"]
    if log_format not in (None, "text", "json"):
        raise ConfigError("log_format%s: %r is not a log format (text or json)"
                          % (settings.origin(DEFAULT_GROUP, "log_format"), log_format))
    if settings.logging["use_syslog"]:
        from agent_common.logs import syslog_facility_code

        try:
            syslog_facility_code(settings.logging["syslog_log_facility"])
        except ValueError as exc:
            raise ConfigError("syslog_log_facility%s: %s"
                              % (settings.origin(DEFAULT_GROUP, "syslog_log_facility"), exc)) from None
    if settings.command_timeout is not None and settings.command_timeout <= 0:
        settings.command_timeout = None  # 0 means no limit, as for other timeouts
    if "local" in settings.collectors:
        for path in settings.groups.get("local", {}).get("path", []):
            if os.path.exists(path) and not os.path.isdir(path):
                raise ConfigError("[local] path%s: %s is a file; it must be a directory of JSON files"
                                  % (settings.origin("local", "path", path), path))

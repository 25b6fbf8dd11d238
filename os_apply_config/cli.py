"""os-apply-config (and its legacy name os-config-applier): render templates, or answer --key questions.

Command line, modes, metadata rules, template tree, messages and exit statuses as the
original (SPEC §4).  Our additions: `--default-mode`, `--dry-run` and `--diff`, Jinja2
templates, and the log file can be moved or turned off with OS_APPLY_CONFIG_LOG_FILE.

On os-apply-config's start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Optional, Sequence

from agent_common.paths import PATHS

LOG = logging.getLogger("os-apply-config")
TOOL = "os-apply-config"
LEGACY_TEMPLATE_ROOTS = ("/opt/stack/os-apply-config/templates", "/opt/stack/os-config-applier/templates")
LOG_FILE_ENV = "OS_APPLY_CONFIG_LOG_FILE"
BOOLEAN_NOT_BOOLEAN = 255


def default_templates(environ=os.environ, default: str = PATHS["oac_templates"].default,
                      legacy: Sequence[str] = LEGACY_TEMPLATE_ROOTS) -> str:
    """SPEC §4.2: $OS_CONFIG_APPLIER_TEMPLATES, else a legacy root when the default is missing, else the default."""
    value = environ.get("OS_CONFIG_APPLIER_TEMPLATES")
    if value is not None:
        return value
    if not os.path.isdir(default):
        for candidate in legacy:
            if os.path.isdir(candidate):
                sys.stderr.write("WARNING: Template directory %s is deprecated. The recommended location for "
                                 "template files is %s\n" % (candidate, default))
                return candidate
    return default


def _octal_mode(text: str) -> int:
    try:
        mode = int(text[2:] if text.startswith("0o") else text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an octal mode such as 0600" % text) from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError("%r is out of range" % text)
    return mode


def build_parser() -> argparse.ArgumentParser:
    from os_apply_config.metadata import DEFAULT_FALLBACK
    from os_apply_config.value_types import TYPES

    from agent_common.cli import new_parser

    p = new_parser(
        os.path.basename(sys.argv[0]) or "os-apply-config",
        "Render the template tree against the JSON metadata files named by the colon-separated "
        "OS_CONFIG_FILES (or --metadata, or the --os-config-files list). The fallback metadata files are read "
        "only when none of those files exists.",
        ["os-apply-config -t templates/ -o /tmp/out -m metadata.json   # render into /tmp/out",
         "os-apply-config --key heat.auth_url --type netaddress          # print one value",
         "OS_CONFIG_FILES=/var/lib/os-collect-config/heat.json os-apply-config --validate"],
    )
    p.add_argument("-t", "--templates", metavar="TEMPLATE_ROOT", default=None,
                   help="Template root directory (default: $OS_CONFIG_APPLIER_TEMPLATES or %s)."
                   % PATHS["oac_templates"].default)
    p.add_argument("-o", "--output", metavar="OUT_DIR", default="/", help="Root directory for output (default: /).")
    p.add_argument("-m", "--metadata", metavar="METADATA_FILE", nargs="*", action="extend", default=[],
                   help="Metadata files, instead of OS_CONFIG_FILES. Several may follow one flag, and the flag "
                   "may be repeated: every file counts.")
    p.add_argument("--fallback-metadata", metavar="FALLBACK_METADATA", nargs="*", default=list(DEFAULT_FALLBACK),
                   help="Files read when none of the metadata files exists; the flag alone disables them "
                   "(default: %(default)s).")
    p.add_argument("-v", "--validate", action="store_true", help="Render everything but write nothing.")
    p.add_argument("--dry-run", action="store_true", help="Render everything and print what would change.")
    p.add_argument("--diff", action="store_true", help="As --dry-run, with a unified diff of each content change "
                   "(not for files others cannot read).")
    p.add_argument("--print-templates", action="store_true", help="Print the template root and exit.")
    p.add_argument("-s", "--subhash", help="Render against the object at this dotted key instead of the whole "
                   "metadata.")
    p.add_argument("--key", metavar="KEY", help="Print the value at this dotted key and exit "
                   "(with --type and --key-default).")
    p.add_argument("--type", default="default", choices=sorted(TYPES),
                   help="Fail unless the --key value has this type (default: %(default)s).")
    p.add_argument("--key-default", help="Printed when --key is missing or null; not type-checked.")
    p.add_argument("--boolean-key", metavar="KEY", help="Exit 0 if the value at KEY is true, 1 if false, "
                   "255 if it is missing or not a boolean. Ignored with --key.")
    p.add_argument("--default-mode", type=_octal_mode, default=0o644, metavar="MODE",
                   help="Mode of files created without a mode from a .oac file (default: 0644).")
    p.add_argument("--os-config-files", default=None, metavar="PATH",
                   help="JSON list of metadata files, used when OS_CONFIG_FILES is not set (default: "
                   "$OS_CONFIG_FILES_PATH or %s)." % PATHS["oac_os_config_files"].default)
    return p


def _log_file(output_root: str, querying: bool) -> Optional[str]:
    """OS_APPLY_CONFIG_LOG_FILE when set (empty: none); else the original's file, for root's real renders only."""
    if LOG_FILE_ENV in os.environ:
        return os.environ[LOG_FILE_ENV] or None
    if os.geteuid() == 0 and not querying and os.path.abspath(output_root) == "/":
        return PATHS["oac_log_file"].default
    return None


def _setup_logging(log_file: Optional[str], log_format: Optional[str]) -> None:
    from agent_common.logs import setup_logging

    try:
        setup_logging(TOOL, log_format_choice=log_format, log_file=log_file)
    except OSError as exc:
        setup_logging(TOOL, log_format_choice=log_format)
        LOG.warning("cannot open log file %s: %s; logging to stderr only", log_file, exc.strerror)


class Failure(Exception):
    """A user-facing error: logged as one line, exit 1."""


def _metadata(opts: argparse.Namespace):
    from os_apply_config import metadata

    metadata.require_named(opts.metadata)
    list_file = opts.os_config_files or os.environ.get("OS_CONFIG_FILES_PATH") or metadata.DEFAULT_LIST_FILE
    main = metadata.main_list(opts.metadata, os.environ, list_file)
    return metadata.collect(main, opts.fallback_metadata), main


def _print_key(opts: argparse.Namespace) -> int:
    from os_apply_config.metadata import MISSING, lookup
    from os_apply_config.value_types import ensure_type

    found, main = _metadata(opts)
    value = lookup(found.config, opts.key)
    if value is MISSING:
        if opts.key_default is not None:
            print(opts.key_default)
            return 0
        raise Failure("key %s does not exist in %s" % (opts.key, ", ".join(p for p in main if p) or "(no files)"))
    text = json.dumps(value) if isinstance(value, (dict, list, bool)) else str(value)
    print(ensure_type(text, opts.type))
    return 0


def _boolean_key(opts: argparse.Namespace) -> int:
    from os_apply_config.metadata import MISSING, lookup

    value = lookup(_metadata(opts)[0].config, opts.boolean_key)
    if isinstance(value, bool):
        return 0 if value else 1
    if value is not MISSING:
        LOG.warning("--boolean-key %s: value %s is not a JSON boolean", opts.boolean_key, json.dumps(value))
    return BOOLEAN_NOT_BOOLEAN


def _render(opts: argparse.Namespace, templates: str, explicit_root: bool) -> int:
    from os_apply_config import apply
    from os_apply_config.metadata import subhash

    found, _ = _metadata(opts)
    context: Any = subhash(found.config, opts.subhash)
    if not os.path.isdir(templates):
        if explicit_root:
            raise Failure("template root %s is not a directory" % templates)
        LOG.warning("template root %s does not exist; nothing to render", templates)
        LOG.info("success")
        return 0
    found = apply.discover(templates)
    cache = None
    if not (opts.validate or opts.dry_run or opts.diff) and isinstance(context, dict):
        from os_apply_config.cache import RenderCache, cache_path

        path = cache_path(opts.output, templates)
        cache = RenderCache(path, context) if path else None
    rendered = apply.render_all(templates, found, context, opts.output, cache)
    if opts.validate:
        LOG.info("success")
        return 0
    changes = apply.plan(rendered, opts.output, opts.default_mode)
    if opts.dry_run or opts.diff:
        sys.stdout.write(apply.describe(changes, opts.diff))
        return 0
    try:
        apply.write(changes)
    except OSError as exc:
        raise Failure("writing %s failed: %s; no file was changed"
                      % (exc.filename or "a file", exc.strerror)) from None
    if cache is not None:
        try:
            apply.remember(cache, rendered, changes, found)
        except OSError as exc:  # the files are written; without a cache the next run just renders everything
            LOG.warning("cannot save the render cache %s: %s", cache.path, exc.strerror)
    LOG.info("success")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    opts = build_parser().parse_args(argv)
    explicit_root = opts.templates is not None
    templates = opts.templates if explicit_root else default_templates()
    if opts.print_templates:
        print(templates)
        return 0
    querying = bool(opts.key or opts.boolean_key)
    _setup_logging(_log_file(opts.output, querying), opts.log_format)
    if opts.key and opts.boolean_key:
        LOG.warning("--key is not compatible with --boolean-key. --boolean-key ignored.")
    from os_apply_config.metadata import MetadataError
    from os_apply_config.render import TemplateError
    from os_apply_config.value_types import ValueTypeError

    try:
        if opts.key:
            return _print_key(opts)
        if opts.boolean_key:
            return _boolean_key(opts)
        return _render(opts, templates, explicit_root)
    except (Failure, MetadataError, TemplateError, ValueTypeError) as exc:
        LOG.error("%s", exc)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

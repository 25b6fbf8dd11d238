"""The template tree, the plan of what changes under the output root, and carrying it out (SPEC §4.5, §4.9).

The tree mirrors the target and `.oac` files are controls; a new file gets 0644
(or `--default-mode`) unless its control says otherwise, an existing file keeps
its mode and owner.  Everything is rendered and checked before anything is
written, a file that is already right is not touched, and all writes happen
together, atomically, so a failure leaves every target as it was.

On os-apply-config's start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import logging
import os
import stat
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from agent_common.atomic import AtomicBatch
from agent_common.documents import open_regular, read_bytes
from os_apply_config import render
from os_apply_config.cache import RecordingDict, RenderCache, cacheable, digest
from os_apply_config.oac import Control, ControlError, parse_control

LOG = logging.getLogger("os-apply-config")
CONTROL_SUFFIX = ".oac"
JINJA_SUFFIX = ".j2"


class Template(NamedTuple):
    path: str  # the template file
    relpath: str  # its path under the template root
    target: str  # the output path, relative to the output root
    kind: str  # "mustache", "jinja" or "executable"
    has_control: bool = False  # whether `<path>.oac` exists

    @property
    def control_path(self) -> str:
        return self.path + CONTROL_SUFFIX


def discover(root: str) -> List[Template]:
    """Every template under ``root`` (symlinked dirs not followed), in a stable order."""
    found: List[Template] = []
    targets: Dict[str, str] = {}
    for current, dirs, files in os.walk(root):
        dirs.sort()
        names = set(files)
        reldir = os.path.relpath(current, root)  # once per directory: relpath per file costs two abspaths
        for name in sorted(files):
            if name.endswith(CONTROL_SUFFIX):
                continue
            path = os.path.join(current, name)
            relpath = name if reldir == "." else os.path.join(reldir, name)
            if name.endswith(JINJA_SUFFIX) and len(name) > len(JINJA_SUFFIX):
                kind, target = "jinja", relpath[: -len(JINJA_SUFFIX)]
            else:
                # access() first: it is false for nearly every template, which then needs no stat
                kind = "executable" if os.access(path, os.X_OK) and os.path.isfile(path) else "mustache"
                target = relpath
            if target in targets:
                raise render.TemplateError(path, "renders to the same file as %s" % targets[target])
            targets[target] = path
            found.append(Template(path, relpath, target, kind, name + CONTROL_SUFFIX in names))
    return found


class Rendered(NamedTuple):
    template: Template
    body: bytes
    control: Control
    #: For the render cache: the digest of the template's inputs, the top-level keys it read, its warnings.
    cache_key: Optional[str] = None
    deps: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()
    signature: Optional[List[Any]] = None  # the template's and control's stat, taken before they were read


def _read_bytes(path: str, strict: bool = False) -> Optional[bytes]:
    """The regular file's bytes, or None when it is missing (or, unless ``strict``, unreadable or not a file)."""
    try:
        return read_bytes(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if strict:
            raise render.TemplateError(path, "cannot read: %s" % exc.strerror) from None
        return None


def _cache_key(text: str, control_text: Optional[bytes]) -> Optional[str]:
    """The digest of a mustache template's inputs, or None when it reads more than its text and the metadata."""
    if not cacheable(text):
        return None
    return digest(b"\0".join([text.encode("utf-8"), b"\0none" if control_text is None else control_text]))


def _control(t: Template, control_text: Optional[bytes]) -> Control:
    try:
        return parse_control(control_text.decode("utf-8")) if control_text is not None else Control()
    except (ControlError, UnicodeDecodeError) as exc:
        raise render.TemplateError(t.path, "%s (in %s)" % (exc, t.control_path)) from None


def render_all(root: str, templates: List[Template], context: Any, output_root: str = "",
               cache: Optional[RenderCache] = None) -> List[Rendered]:
    """Render every template or raise the first TemplateError; nothing is written here.

    With a ``cache``, a mustache template whose inputs and output are as last recorded
    is skipped: it is left out of the result.
    """
    jinja: Optional[render.JinjaRenderer] = None
    recorder = RecordingDict(context) if isinstance(context, dict) else None
    out = []
    for t in templates:
        signature = None
        if cache and t.kind == "mustache":
            signature = cache.signature(t.path, t.control_path if t.has_control else None)
            entry = _cached(cache, t, cache.known_key(t.target, signature), output_root)
            if entry is not None:  # template and control unchanged since recorded: not even read
                continue
        control_text = _read_bytes(t.control_path, strict=True) if t.has_control else None
        if t.kind == "executable":
            body = render.render_executable(t.path, context)
            out.append(Rendered(t, body.encode("utf-8"), _control(t, control_text)))
        elif t.kind == "jinja":
            jinja = jinja or render.JinjaRenderer(root)
            body = jinja.render(t.path, t.relpath, context if isinstance(context, dict) else {})
            out.append(Rendered(t, body.encode("utf-8"), _control(t, control_text)))
        else:
            text = _read_template(t.path)
            key = _cache_key(text, control_text)
            if _cached(cache, t, key, output_root) is not None:
                continue
            control = _control(t, control_text)
            body, missing = render.render_mustache(t.path, text, context if recorder is None else recorder)
            deps = tuple(recorder.take()) if recorder is not None else ()
            out.append(Rendered(t, body.encode("utf-8"), control, key, deps, tuple(missing), signature))
    return out


def _cached(cache: Optional[RenderCache], t: Template, key: Optional[str], output_root: str) -> Optional[Dict]:
    """The cache entry when ``t`` with inputs ``key`` needs no render (its warnings repeated), else None."""
    entry = cache.hit(t.target, key, os.path.join(output_root, t.target)) if cache and key else None
    if entry is not None:
        render.warn_missing(t.path, entry.get("warnings", []))
    return entry


def _read_template(path: str) -> str:
    try:
        with os.fdopen(open_regular(path)) as f:  # the locale's encoding and universal newlines, as the original
            return f.read()
    except UnicodeDecodeError as exc:
        raise render.TemplateError(path, "not valid text in the locale's encoding: %s" % exc) from None
    except OSError as exc:
        raise render.TemplateError(path, "cannot read template: %s" % exc.strerror) from None


class Change(NamedTuple):
    """What happens to one output path. ``action``: create, update, delete, unchanged, skip."""

    path: str
    action: str
    body: bytes = b""
    mode: int = 0o644
    uid: Optional[int] = None
    gid: Optional[int] = None
    reasons: Tuple[str, ...] = ()
    old_body: Optional[bytes] = None


def plan_one(item: Rendered, output_root: str, default_mode: int) -> Change:
    """Decide what writing ``item`` means for its target; raises TemplateError for a target that is in the way."""
    path = os.path.join(output_root, item.template.target)
    control = item.control
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        lst = None
    except OSError as exc:
        raise render.TemplateError(item.template.path, "cannot inspect %s: %s" % (path, exc.strerror)) from None
    try:
        st = os.stat(path) if lst is not None else None
    except OSError:
        st = None  # a dangling symlink: replaced like any symlink
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise render.TemplateError(item.template.path, "target %s is a directory" % path)
    if not control.allow_empty and not item.body:
        return Change(path, "delete" if lst is not None else "skip")
    mode = control.mode if control.mode is not None else (stat.S_IMODE(st.st_mode) if st else default_mode)
    uid = control.owner if control.owner is not None else (st.st_uid if st else None)
    gid = control.group if control.group is not None else (st.st_gid if st else None)
    if st is None or lst is None:  # (lst is None only when st is)
        return Change(path, "create", item.body, mode, uid, gid, ("new file",))
    reasons = []
    if stat.S_ISLNK(lst.st_mode):
        reasons.append("replaces a symlink")
    old = _read_bytes(path) if st.st_size == len(item.body) else None
    if old != item.body:
        reasons.append("content")
    if stat.S_IMODE(st.st_mode) != mode:
        reasons.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), mode))
    if (uid is not None and uid != st.st_uid) or (gid is not None and gid != st.st_gid):
        reasons.append("owner")
    if not reasons:
        return Change(path, "unchanged")
    old_body = old if old is not None else _read_bytes(path)
    return Change(path, "update", item.body, mode, uid, gid, tuple(reasons), old_body)


def plan(rendered: List[Rendered], output_root: str, default_mode: int) -> List[Change]:
    return [plan_one(item, output_root, default_mode) for item in rendered]


def remember(cache: RenderCache, rendered: List[Rendered], changes: List[Change], templates: List[Template]) -> None:
    """Record in ``cache`` what the cacheable templates produced, now that it is on disk."""
    for item, change in zip(rendered, changes):
        if item.cache_key and change.action in ("create", "update", "unchanged"):
            cache.record(item.template.target, item.cache_key, list(item.deps), list(item.warnings), item.body,
                         change.path, item.signature)
    cache.forget_except({t.target for t in templates})
    cache.save()


def write(changes: List[Change]) -> None:
    """Carry out the plan: all writes in one atomic batch, then deletions."""
    with AtomicBatch() as batch:
        for c in changes:
            if c.action in ("create", "update"):
                batch.make_dirs(os.path.dirname(c.path))
                batch.stage(c.path, c.body, c.mode, uid=c.uid, gid=c.gid)
    for c in changes:
        if c.action in ("create", "update"):
            LOG.info("writing %s", c.path)
        elif c.action == "delete":
            LOG.info("deleting %s", c.path)
            os.unlink(c.path)
        elif c.action == "skip":
            LOG.info("not creating empty %s", c.path)


def describe(changes: List[Change], show_diff: bool) -> str:
    """The dry-run report: one line per path that would change, with a unified diff when asked.

    The diff of a file that is not readable by others is not shown: it may hold secrets.
    """
    lines: List[str] = []
    for c in changes:
        if c.action == "unchanged":
            continue
        if c.action == "skip":
            lines.append("would not create empty %s" % c.path)
            continue
        if c.action == "delete":
            lines.append("would delete %s" % c.path)
            continue
        lines.append("would %s %s (%s)" % (c.action, c.path, ", ".join(c.reasons)))
        if not show_diff or "content" not in c.reasons and c.action != "create":
            continue
        if not c.mode & stat.S_IROTH:
            lines.append("  (diff not shown: %s is not readable by others)" % c.path)
            continue
        old = (c.old_body or b"").decode("utf-8", "replace").splitlines(True)
        new = c.body.decode("utf-8", "replace").splitlines(True)
        import difflib

        diff = difflib.unified_diff(old, new, c.path if c.action == "update" else "/dev/null", c.path)
        lines.extend(line.rstrip("\n") for line in diff)
    return "\n".join(lines) + ("\n" if lines else "")

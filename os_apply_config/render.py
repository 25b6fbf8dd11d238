"""Turning one template into the bytes of one file: mustache, Jinja2 (`NAME.j2`) or an executable.

Mustache goes through pystache with the original's settings (SPEC §4.6): no HTML
escaping, non-string values as JSON, missing names render empty (each reported once
per template and name).  Jinja2 templates are sandboxed and strict about undefined
names; an executable template's stderr is logged.  Every error names the template
file and, where there is one, the line.

On os-apply-config's start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

LOG = logging.getLogger("os-apply-config")


class TemplateError(Exception):
    """A template that cannot be rendered: ``str()`` is `<path>[:<line>]: <problem>`."""

    def __init__(self, path: str, message: str, line: Optional[int] = None) -> None:
        super().__init__("%s%s: %s" % (path, ":%d" % line if line else "", message))
        self.path, self.line, self.message = path, line, message


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, max(position, 0)) + 1


_mustache_renderer: Optional[Callable[[str, Any, List[str]], str]] = None


def _json_text(value: Any) -> str:
    """What the original inserts for a non-string value: JSON text, None as nothing.

    Scalars take a shortcut that gives json.dumps' exact text (it formats ints and finite
    floats with their repr): thousands of numbers per run need no encoder each.
    """
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is int or (kind is float and value - value == 0):
        return repr(value)
    return json.dumps(value)


def _build_mustache() -> Callable[[str, Any, List[str]], str]:
    """A render(text, context, missing) function: pystache as the original configures it, plus reporting."""
    import pystache
    from pystache.common import is_string
    from pystache.context import KeyNotFoundError
    from pystache.parser import parse
    from pystache.renderengine import RenderEngine

    class Engine(RenderEngine):
        missing: List[str] = []

        def fetch_string(self, context, name):  # noqa: D102 - pystache's contract
            try:
                value = context.get(name)
            except KeyNotFoundError:
                self.missing.append(name)
                return ""
            if callable(value):
                return self._render_value(value(), context)
            return value if is_string(value) else self.to_str(value)

        def render(self, template, context_stack, delimiters=None):
            return parse(template, delimiters, raise_on_mismatch=True).render(self, context_stack)

    class Renderer(pystache.Renderer):
        def str_coerce(self, val):
            return _json_text(val)

        def _make_render_engine(self):
            base = super()._make_render_engine()
            return Engine(literal=base.literal, escape=base.escape, resolve_context=base.resolve_context,
                          resolve_partial=base.resolve_partial, to_str=base.to_str)

    renderer = Renderer(escape=lambda text: text, missing_tags="ignore")

    def render(text: str, context: Any, missing: List[str]) -> str:
        Engine.missing = missing
        return renderer.render(text, context)

    return render


_SECTION_OPEN = re.compile(r"\{\{\s*[#^][^}]*\}\}")


def _opening_tag(text: str, end: int, reported: str) -> str:
    """The section tag that ends at ``end``: the one left open.

    pystache reports where the first unclosed section starts but names the last tag it
    parsed (an unclosed `{{#hello}}` followed by `{{port}}` comes back as `{{#port}}`), so
    the tag is read back from the text.  With changed delimiters it cannot be: pystache's
    name stays.
    """
    tags = _SECTION_OPEN.findall(text, 0, end)
    return tags[-1] if tags else "{{%s}}" % reported


def warn_missing(path: str, names: List[str]) -> None:
    for name in names:
        LOG.warning("%s: key '%s' not found in the metadata; rendered as empty", path, name)


def render_mustache(path: str, text: str, context: Any) -> Tuple[str, List[str]]:
    """Render mustache ``text`` (read from ``path``); warn once per missing name, and return the names."""
    global _mustache_renderer
    if "{{" not in text:
        return text, []  # no tag can open without the default delimiter: nothing to render
    if _mustache_renderer is None:
        _mustache_renderer = _build_mustache()
    from pystache.parser import ParsingError

    missing: List[str] = []
    try:
        body = _mustache_renderer(text, context, missing)
    except ParsingError as exc:
        info = exc.info
        # pystache reports the offset just past the tag (and past its newline when standalone)
        line = _line_of(text, info.position - 1) if info is not None else None
        message = str(exc).split(" at position")[0].split(". Its section")[0]
        if info is not None and "Did not find" in message:
            message = "unclosed section %s" % _opening_tag(text, info.position, info.tag_type + info.tag_key)
        raise TemplateError(path, message, line) from None
    except Exception as exc:  # pystache raises bare Exceptions for bad tags
        raise TemplateError(path, "could not render moustache template: %s" % exc) from None
    names = list(dict.fromkeys(missing))
    warn_missing(path, names)
    return body, names


class JinjaRenderer:
    """Jinja2 templates of one template root: sandboxed, StrictUndefined, includes relative to the root."""

    def __init__(self, root: str) -> None:
        from jinja2 import FileSystemLoader, StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(root), undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False
        )

    def render(self, path: str, relpath: str, context: Dict[str, Any]) -> str:
        import jinja2

        try:
            return self.env.get_template(relpath).render(context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(exc.filename or path, exc.message or str(exc), exc.lineno) from None
        except jinja2.TemplateError as exc:
            raise TemplateError(path, _jinja_message(exc), _traceback_line(exc, path)) from None
        except Exception as exc:  # the template's own code failed: 1 + "a", 1 / 0, a macro that calls itself
            message = "%s: %s" % (type(exc).__name__, exc)
            raise TemplateError(path, message, _traceback_line(exc, path)) from None


def _jinja_message(exc: Exception) -> str:
    message = str(exc)
    if type(exc).__name__ == "UndefinedError":
        return "undefined: %s" % message
    return message


def _traceback_line(exc: BaseException, path: str) -> Optional[int]:
    """The template line Jinja2 maps the failing frame to (its tracebacks carry template file names)."""
    line = None
    tb = exc.__traceback__
    real = os.path.realpath(path)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename == path or os.path.realpath(filename) == real:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_executable(path: str, context: Any) -> str:
    """Run ``path`` with the JSON context on stdin; its stdout is the body (SPEC §4.7)."""
    from agent_common import proc

    try:
        result = proc.run([path], stdin_data=json.dumps(context).encode("utf-8"))
    except OSError as exc:
        raise TemplateError(path, "config script could not run: %s" % exc.strerror) from None
    stderr = result.stderr.decode("utf-8", "replace").rstrip("\n")
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode("utf-8", "replace").rstrip("\n")
        raise TemplateError(path, "config script failed with exit status %d; output:\n%s"
                            % (result.returncode, output or "(none)"))
    for line in stderr.splitlines():
        LOG.info("%s: %s", path, line)
    try:
        return result.stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(path, "config script output is not UTF-8: %s" % exc) from None

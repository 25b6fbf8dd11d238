"""Render a boot-config template into the user-data Heat would give the server.

Only what the boot-config templates use is implemented, the way Heat does it:
``get_file`` (relative to the template, as python-heatclient resolves it),
``get_param`` (defaults, overrides, required parameters and ``allowed_pattern`` constraints),
``str_replace`` (one pass, longest key first, so pasted text is never scanned
again), ``get_resource``, and the resources ``OS::Heat::SoftwareConfig``,
``OS::Heat::CloudConfig`` and ``OS::Heat::MultipartMime`` (text/plain parts in
list order, utf-8 where a part is not ASCII).  The ``config`` output is the
MIME text; ``parts()`` reads it back the way cloud-init does.
"""
from __future__ import annotations

import re
from email import message_from_string
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml


class TemplateError(Exception):
    pass


class Renderer:
    def __init__(self, template: Path, params: Optional[Mapping[str, str]] = None) -> None:
        self.path = template
        self.doc = yaml.safe_load(template.read_text())
        self.params = self._resolve_params(dict(params or {}))
        self._configs: Dict[str, str] = {}

    def _resolve_params(self, given: Dict[str, str]) -> Dict[str, str]:
        declared = self.doc.get("parameters") or {}
        unknown = set(given) - set(declared)
        if unknown:
            raise TemplateError("parameters not in %s: %s" % (self.path.name, sorted(unknown)))
        values = {}
        for name, spec in declared.items():
            if name not in given and "default" not in spec:
                raise TemplateError("The Parameter (%s) was not provided." % name)  # Heat refuses such a stack
            value = str(given.get(name, spec.get("default")))
            for constraint in spec.get("constraints") or ():
                pattern = constraint.get("allowed_pattern")
                if pattern is not None and not re.fullmatch(pattern, value):
                    raise TemplateError("parameter %s=%r: %s" % (name, value, constraint.get("description")))
            values[name] = value
        return values

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (fn, arg), = node.items()
            if fn == "get_file":
                return (self.path.parent / arg).read_text()
            if fn == "get_param":
                return self.params[arg]
            if fn == "get_resource":
                return self.config_of(arg)
            if fn == "str_replace":
                return self._str_replace(self.resolve(arg["template"]), self.resolve(arg["params"]))
        return {key: self.resolve(value) for key, value in node.items()}

    @staticmethod
    def _str_replace(template: str, params: Mapping[str, str]) -> str:
        keys = sorted(params, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(k) for k in keys))
        return pattern.sub(lambda m: str(params[m.group(0)]), template)

    def config_of(self, name: str) -> str:
        """The config text a resource stands for (what Heat's software-config API stores)."""
        if name not in self._configs:
            resource = self.doc["resources"][name]
            props = resource.get("properties") or {}
            kind = resource["type"]
            if kind == "OS::Heat::SoftwareConfig":
                text = self.resolve(props.get("config", ""))
            elif kind == "OS::Heat::CloudConfig":
                text = "#cloud-config\n" + yaml.safe_dump(self.resolve(props["cloud_config"]), default_flow_style=False)
            elif kind == "OS::Heat::MultipartMime":
                text = self._multipart([self.resolve(part["config"]) for part in props["parts"]])
            else:
                raise TemplateError("resource type %s is not rendered here" % kind)
            self._configs[name] = text
        return self._configs[name]

    @staticmethod
    def _multipart(parts: List[str]) -> str:
        subparts = []
        for part in parts:
            try:
                part.encode("us-ascii")
                charset = "us-ascii"
            except UnicodeEncodeError:
                charset = "utf-8"
            subparts.append(MIMEText(part, _charset=charset))
        return MIMEMultipart(_subparts=subparts).as_string()

    def output(self, name: str = "config") -> str:
        return self.resolve(self.doc["outputs"][name]["value"])


def render(template: Path, params: Optional[Mapping[str, str]] = None) -> str:
    return Renderer(template, params).output("config")


def parts(user_data: str) -> List[str]:
    """The decoded text of each part, in order (what cloud-init hands its part handlers)."""
    message = message_from_string(user_data)
    return [p.get_payload(decode=True).decode(p.get_content_charset() or "us-ascii")
            for p in message.walk() if not p.is_multipart()]


def environment_template(env_file: Path) -> Optional[Path]:
    """The template an environment file registers as Heat::InstallConfigAgent (None for a built-in type)."""
    registry = yaml.safe_load(env_file.read_text())["resource_registry"]
    target = registry["Heat::InstallConfigAgent"]
    return None if target.startswith("OS::") else env_file.parent / target

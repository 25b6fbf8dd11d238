"""The deployment contract (SPEC §6.4): what a Heat software deployment is, and the rules for reading one.

A deployment stays a plain dict, because that is what hooks receive and what the
state files hold.  The dispatcher, the hooks and the signals check and read it the
same way, so the rules live here, below all three: parsing the deployments file,
the id, group and shape checks (ids become file names), input values and their
environment form, which inputs are secrets, and the hook timeout.

On the hook start path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import logging
import math
import re

from agent_common.documents import loads_json, read_text
from agent_common.journal_layout import OPEN_SUFFIX, RECORD_SUFFIX
from agent_common.logs import register_secret

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs every hook run ~4 ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Mapping, Optional

    #: One deployment as Heat sends it (SPEC §6.4).
    Deployment = Dict[str, Any]
else:
    Deployment = dict

LOG = logging.getLogger("heat-config")

#: Environment variable giving the default hook timeout in seconds (SPEC §12.5); unset or 0: no limit.
TIMEOUT_ENV = "HEAT_CONFIG_HOOK_TIMEOUT"
#: Input a Heat user can set on a deployment to bound its hook (seconds); ``options.timeout`` wins.
TIMEOUT_INPUT = "deploy_timeout"

#: Inputs whose values are credentials (SPEC §6.4, §12.10).
SECRET_INPUTS = frozenset({"deploy_password", "deploy_signal_id"})
#: Input names that look like credentials; their values are registered as secrets too.
_SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|credential|private|(^|_)key$|signature)")


class BadDeploymentsFile(Exception):
    """The deployments file cannot be read, is not JSON, or not a list (SPEC §12.7); the message names the file."""


def parse(text: str, path: str) -> List[Any]:
    """The list in the deployments file; empty, whitespace, ``null`` and ``[]`` mean none (§12.13.9)."""
    if not text.strip():
        return []
    try:
        data = loads_json(text, path)
    except ValueError as exc:
        raise BadDeploymentsFile(str(exc)) from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise BadDeploymentsFile("%s: expected a JSON list of deployments, found %s" % (path, type(data).__name__))
    return data


def read_deployments(path: str) -> Optional[List[Any]]:
    """The deployments in the file ``path``; None when it does not exist.

    Every other way the file can be wrong — a FIFO or a directory, no permission, bytes
    that are not UTF-8, JSON that is not JSON or nested too deeply, not a list — is a
    BadDeploymentsFile whose message is the one line naming the file (SPEC §12.7).
    """
    try:
        text = read_text(path)
    except OSError as exc:
        raise BadDeploymentsFile("%s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise BadDeploymentsFile(str(exc)) from None
    return None if text is None else parse(text, path)


# -- ids and the shape of a deployment --------------------------------------------------------
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")

#: The longest file name the filesystems we run on take (NAME_MAX).
NAME_MAX = 255
#: Every file name made from a deployment id (``{}``), by the directory that holds it: the dispatcher's
#: markers (SPEC §6.6) and journal (§12.1), and the hooks' own files (ansible, puppet, salt, kubelet).
#: An id must fit in each of them, and must not make one deployment's file another's.
ID_FILE_NAMES = {
    "deployed dir": ("{}.json", "{}.notify.json"),
    "journal": ("{}" + RECORD_SUFFIX, "{}" + OPEN_SUFFIX),
    "ansible working dir": ("{}_playbook.yaml", "{}_variables.json"),
    "puppet working dir": ("{}.pp",),
    "puppet log dir": ("2024-03-05-09-12-44Z-{}-stdout.log", "2024-03-05-09-12-44Z-{}-stderr.log"),
    "salt working dir": ("{}.sls",),
    "kubelet manifests dir": ("{}.json",),
}
#: The longest id that still names every file of ID_FILE_NAMES.
ID_MAX_LEN = NAME_MAX - max(len(name) - 2 for names in ID_FILE_NAMES.values() for name in names)


def _colliding_endings() -> "tuple[str, ...]":
    """Id endings that make an id's file the file of another id in the same directory.

    ``x.notify`` + ``.json`` is ``x`` + ``.notify.json``: whenever one suffix of a
    directory ends with another, the difference is an ending no id may have.
    """
    endings = set()
    for names in ID_FILE_NAMES.values():
        for longer in names:
            for shorter in names:
                head, tail = longer.split("{}"), shorter.split("{}")
                if longer != shorter and head[0] == tail[0] and head[1].endswith(tail[1]):
                    endings.add(head[1][: len(head[1]) - len(tail[1])])
    return tuple(sorted(endings))


_COLLIDING_ENDINGS = _colliding_endings()


def name_problem(value: Any) -> Optional[str]:
    """Why ``value`` cannot be a deployment id or group used in a path, or None when it can (SPEC §12.7)."""
    if not isinstance(value, str) or not value:
        return "empty or not a string"
    if ".." in value:
        return "contains '..'"
    if value == ".":
        return "is '.'"
    if not _SAFE_NAME.match(value):
        return "has characters other than letters, digits, '-', '_', '.' and ':'"
    return None


def id_problem(value: Any) -> Optional[str]:
    """Why ``value`` cannot be a deployment id, or None: the rules of ``name_problem``, and it must name
    every file of ID_FILE_NAMES, each different from another deployment's (SPEC §12.7, §12.13.8)."""
    problem = name_problem(value)
    if problem:
        return problem
    if len(value) > ID_MAX_LEN:
        return "is %d characters long; at most %d can name its state files" % (len(value), ID_MAX_LEN)
    for ending in _COLLIDING_ENDINGS:
        if value.endswith(ending):
            return "ends with %r, which would share its state files with id %r" % (ending, value[: -len(ending)])
    return None


def _items_problem(deployment: Deployment, field: str) -> Optional[str]:
    """``inputs`` / ``outputs``: absent, null or a list of objects, each with a string name."""
    items = deployment.get(field)
    if items is None:
        return None
    if not isinstance(items, list):
        return "%s must be a list, not %s" % (field, _type_name(items))
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return "%s[%d] must be an object, not %s" % (field, index, _type_name(item))
        if not isinstance(item.get("name"), str):
            return "%s[%d].name must be a string, not %s" % (field, index, _type_name(item.get("name")))
    return None


def inputs_problem(deployment: Deployment) -> Optional[str]:
    """Why the deployment's ``inputs`` cannot be read, or None: what every reader of inputs checks first."""
    return _items_problem(deployment, "inputs")


def _component_problem(config: Any) -> Optional[str]:
    """A ``component`` config: ``{"configs": [{"actions": [...], "tool": "...", "config": ...}, ...]}`` (§6.4)."""
    configs = config.get("configs") if isinstance(config, dict) else None
    if not isinstance(configs, list):
        return "config.configs must be a list (group component)"
    for index, entry in enumerate(configs):
        where = "config.configs[%d]" % index
        if not isinstance(entry, dict):
            return "%s must be an object, not %s" % (where, _type_name(entry))
        actions = entry.get("actions")
        if actions is not None and not (isinstance(actions, list) and all(isinstance(a, str) for a in actions)):
            return "%s.actions must be a list of action names" % where
        if not isinstance(entry.get("tool"), (str, type(None))):
            return "%s.tool must be a string, not %s" % (where, _type_name(entry.get("tool")))
    return None


def shape_problem(deployment: Deployment) -> Optional[str]:
    """Why a deployment's fields (all but its id) have the wrong type, naming the field, or None (SPEC §6.4).

    Checked once, before anything reads the fields, so that a wrong type is one refusal
    naming the field instead of a TypeError wherever the field happens to be used first.
    """
    problem = inputs_problem(deployment) or _items_problem(deployment, "outputs")
    if problem:
        return problem
    for field, kinds, expected in (("group", (str,), "a string"), ("name", (str,), "a string"),
                                   ("options", (dict,), "an object")):
        value = deployment.get(field)
        if value is not None and not isinstance(value, kinds):
            return "%s must be %s, not %s" % (field, expected, _type_name(value))
    if deployment.get("group") == "component":
        return _component_problem(deployment.get("config"))
    return None


def deployment_problem(deployment: Any) -> Optional[str]:
    """Why this deployment cannot be run, naming the field, or None: its id, then its shape."""
    if not isinstance(deployment, dict):
        return "not a JSON object but %s" % _type_name(deployment)
    problem = id_problem(deployment.get("id"))
    return "id %s" % problem if problem else shape_problem(deployment)


def _type_name(value: Any) -> str:
    """A JSON type name for messages (``int`` is a number to the user who wrote the JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


class BadDeployment(ValueError):
    """The deployment cannot be run as given; the message says which field and why."""


def deployment_id(deployment: Deployment) -> str:
    """The deployment's id, checked safe to use as a file name; BadDeployment otherwise."""
    problem = id_problem(deployment.get("id"))
    if problem:
        raise BadDeployment("deployment id %s" % problem)
    return deployment["id"]


# -- inputs -------------------------------------------------------------------------------------
def input_values(deployment: Deployment) -> Dict[str, Any]:
    """name → value of the deployment's inputs (a missing value is None).

    Inputs of the wrong shape (``inputs_problem``) give none at all: a signal route or
    credential is never taken from a list whose other items could not be read.
    """
    if inputs_problem(deployment):
        return {}
    return {item["name"]: item.get("value") for item in deployment.get("inputs") or []}


def env_text(value: Any) -> str:
    """How one input value reaches a tool's environment: strings as they are, null as "",
    anything else as its JSON text (``true``, ``5``, ``{"a": 1}``) instead of crashing (SPEC §11.16)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def input_env(deployment: Deployment) -> Dict[str, str]:
    """One environment variable per input; names a process environment cannot carry are skipped."""
    env: Dict[str, str] = {}
    for name, value in input_values(deployment).items():
        text = env_text(value)
        if not name or "=" in name or "\0" in name or "\0" in text:
            LOG.warning("Input %r cannot be passed in the environment; skipped", name)
            continue
        env[name] = text
    return env


def is_secret_input(name: str) -> bool:
    return name in SECRET_INPUTS or bool(_SECRET_NAME.search(name))


def register_input_secrets(deployment: Deployment) -> None:
    """Make every credential-like input value disappear from logs (SPEC §12.10)."""
    for name, value in input_values(deployment).items():
        if not is_secret_input(name) or not isinstance(value, str):
            continue
        register_secret(value)
        if "?" in value:  # a signed URL: its query is the secret, the path is useful in logs
            register_secret(value.split("?", 1)[1])


# -- timeout ------------------------------------------------------------------------------------
def _seconds(value: Any, source: str) -> Optional[float]:
    """A timeout from ``source``: None when unset or 0 (no limit, SPEC §12.5).

    Anything but a finite number >= 0 is no limit from this source too, but said once in a
    warning naming the source and the value: a typo must not silently remove a time limit.
    """
    if value is None or value == "":
        return None
    try:
        seconds = float("nan") if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds < 0:
        LOG.warning("Ignoring %s=%.60r: not a number of seconds >= 0", source, value)
        return None
    return seconds or None


def hook_timeout(deployment: Deployment, environ: Mapping[str, str]) -> Optional[float]:
    """SPEC §12.5: ``options.timeout`` wins, then the ``deploy_timeout`` input, then HEAT_CONFIG_HOOK_TIMEOUT."""
    options = deployment.get("options")
    sources = (
        ("options.timeout", options.get("timeout") if isinstance(options, dict) else None),
        ("input " + TIMEOUT_INPUT, input_values(deployment).get(TIMEOUT_INPUT)),
        (TIMEOUT_ENV, environ.get(TIMEOUT_ENV)),
    )
    for source, value in sources:
        seconds = _seconds(value, source)
        if seconds:
            return seconds
    return None


def timeout_message(seconds: float) -> str:
    """The last line of deploy_stderr for a hook stopped by its timeout (SPEC §12.13.12)."""
    return "timed out after %s seconds" % (int(seconds) if float(seconds).is_integer() else seconds)


def deployment_label(deployment: Any, where: str) -> str:
    """How a message names a deployment: ``deployment <id>``, or ``deployment <where>`` (its position in
    a file, say) when the id cannot be used, so an odd id is never printed raw."""
    if isinstance(deployment, dict) and id_problem(deployment.get("id")) is None:
        where = deployment["id"]
    return "deployment %s" % where


def refusal(deployment: Any, where: str = "on stdin") -> Optional[str]:
    """One line naming the deployment (``deployment_label``) and the field that stops it from running
    (``deployment_problem``), or None when it can run."""
    problem = deployment_problem(deployment)
    return None if problem is None else "%s: %s" % (deployment_label(deployment, where), problem)



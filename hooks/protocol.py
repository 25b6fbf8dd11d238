"""The hook protocol: what a hook receives, what it gives back, and the rules every hook shares.

A hook gets one deployment (SPEC §6.4, after the dispatcher's coercion and
component resolution) and returns a ``HookResult``.  Built-in hooks are modules
with ``run(deployment, ctx) -> HookResult`` (and optionally
``cleanup(keep_ids, ctx)``); the dispatcher calls them in-process, while
``serve()`` wraps the same function as a stdin-JSON → stdout-JSON executable
(SPEC §6.13) for ``heat-config-hook GROUP`` and for hook shims in a hook directory.

Everything a hook needs beyond its own tool lives here, so that each hook
module is only about its tool: input → environment rules (SPEC §8.1, fixed per
§11.16 and §12.13.14), outputs-path files (§8.0), bounded output and the
timeout (§12.5, §12.11, via agent_common.proc), and secrets (§12.10).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from agent_common.logs import HEAT_CONFIG_FORMAT, register_secret, setup_logging

if TYPE_CHECKING:  # pragma: no cover - agent_common.proc is imported when a tool actually runs
    from agent_common.proc import ProcResult

LOG = logging.getLogger("heat-config")

#: Environment variable giving the default hook timeout in seconds (SPEC §12.5); unset or 0: no limit.
TIMEOUT_ENV = "HEAT_CONFIG_HOOK_TIMEOUT"
#: Input a Heat user can set on a deployment to bound its hook (seconds); ``options.timeout`` wins.
TIMEOUT_INPUT = "deploy_timeout"
#: Status code of a hook stopped by its timeout (as coreutils' timeout(1)).
TIMEOUT_STATUS = 124
#: Cap on each of stdout/stderr kept from a hook's tool (the tail is kept, the cut stated).
OUTPUT_CAP = 512 * 1024

#: Inputs whose values are credentials (SPEC §6.4, §12.10).
SECRET_INPUTS = frozenset({"deploy_password", "deploy_signal_id"})
#: Input names that look like credentials; their values are registered as secrets too.
_SECRET_NAME = re.compile(r"(?i)(pass(word|wd)?|secret|token|credential|private|(^|_)key$|signature)")

Deployment = Dict[str, Any]


class HookResult:
    """What a hook produced: declared outputs plus the tool's stdout, stderr and status code.

    (A plain class rather than a dataclass: this module is on the dispatcher's
    start-up path, and importing dataclasses costs more than the rest of it.)
    """

    __slots__ = ("outputs", "stdout", "stderr", "status_code")

    def __init__(self, outputs: Optional[Dict[str, Any]] = None, stdout: str = "", stderr: str = "",
                 status_code: int = 0) -> None:
        self.outputs: Dict[str, Any] = dict(outputs or {})
        self.stdout = stdout
        self.stderr = stderr
        self.status_code = status_code

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HookResult):
            return NotImplemented
        return self.signal_data() == other.signal_data()

    def __repr__(self) -> str:
        return "HookResult(status_code=%r, outputs=%r)" % (self.status_code, sorted(self.outputs))

    def signal_data(self) -> Dict[str, Any]:
        """The JSON object a hook prints and Heat receives (SPEC §6.13, §7.8)."""
        data = dict(self.outputs)
        data.update(deploy_stdout=self.stdout, deploy_stderr=self.stderr, deploy_status_code=self.status_code)
        return data

    @classmethod
    def failure(cls, message: str, status_code: int = 1) -> "HookResult":
        """A result for a hook that could not do its job; ``message`` becomes deploy_stderr."""
        return cls(stderr=message if message.endswith("\n") else message + "\n", status_code=status_code)


class HookContext:
    """What the caller (dispatcher, heat-config-hook, heat-config run) gives a hook besides the deployment."""

    def __init__(self, environ: Optional[Dict[str, str]] = None, timeout: Optional[float] = None,
                 output_cap: int = OUTPUT_CAP, started: Optional[float] = None,
                 gone_ids: Optional[Iterable[str]] = None, on_start: Optional[Callable[[int], None]] = None) -> None:
        self.environ: Dict[str, str] = dict(os.environ) if environ is None else environ
        #: Called with the process group id of each tool ``run`` starts (the dispatcher journals it, §12.3).
        self.on_start = on_start
        #: For ``cleanup``: ids known to have left the metadata (None: not known).
        self.gone_ids = None if gone_ids is None else frozenset(gone_ids)
        #: Seconds the whole hook may take; None means no limit.
        self.timeout = timeout
        self.output_cap = output_cap
        self.started = time.monotonic() if started is None else started

    def __repr__(self) -> str:
        return "HookContext(timeout=%r)" % (self.timeout,)

    def remaining(self) -> Optional[float]:
        """Seconds left of the timeout (never below a small positive value), or None without a limit."""
        if not self.timeout:
            return None
        return max(self.timeout - (time.monotonic() - self.started), 0.01)

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        stdin_data: Optional[bytes] = None,
        stdout_cap: Optional[int] = None,
    ) -> "ProcResult":
        """Run a tool in its own process group, bounded by what is left of the timeout and the output cap
        (``stdout_cap`` instead for stdout, when given)."""
        from agent_common import proc

        return proc.run(
            list(argv),
            env=self.environ if env is None else env,
            cwd=cwd,
            stdin_data=stdin_data,
            timeout=self.remaining(),
            output_cap=self.output_cap,
            stdout_cap=stdout_cap,
            on_start=self.on_start,
        )

    def run_tool(
        self,
        argv: Sequence[str],
        remedy: str,
        *,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> "ProcResult":
        """``run`` for the tool a hook drives: logged, and when it cannot start, ToolCannotRun ends the hook
        with the failed result of ``cannot_run`` (``remedy`` says how to get the tool)."""
        LOG.debug("Running %s%s", " ".join(argv), " in %s" % cwd if cwd else "")
        try:
            return self.run(argv, env=env, cwd=cwd)
        except OSError as exc:
            raise ToolCannotRun(cannot_run(argv[0], exc, remedy)) from None

    def path(self, env_name: str, default: str) -> str:
        """A hook directory: its environment override when set and non-empty, else the default."""
        return self.environ.get(env_name) or default

    def private_dir(self, env_name: str, default: str) -> str:
        """``path``, created 0700 when missing (SPEC §8.0); when it cannot be a directory (a file is there,
        no permission) the hook ends, through ToolCannotRun, with a failure naming the variable."""
        path = self.path(env_name, default)
        try:
            ensure_private_dir(path)
        except OSError as exc:
            reason = "a file that is not a directory is there" if isinstance(exc, FileExistsError) else exc.strerror
            message = "%s=%s cannot be used as a directory: %s" % (env_name, path, reason)
            LOG.error("%s", message)
            raise ToolCannotRun(HookResult.failure(message)) from None
        return path


Hook = Callable[[Deployment, HookContext], HookResult]


# -- ids and the shape of a deployment --------------------------------------------------------
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")

#: The longest file name the filesystems we run on take (NAME_MAX).
NAME_MAX = 255
#: Every file name made from a deployment id (``{}``), by the directory that holds it: the dispatcher's
#: markers (SPEC §6.6) and journal (§12.1), and the hooks' own files (ansible, puppet, salt, kubelet).
#: An id must fit in each of them, and must not make one deployment's file another's.
ID_FILE_NAMES = {
    "deployed dir": ("{}.json", "{}.notify.json"),
    "journal": ("{}.json", "{}.open"),
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


class ToolCannotRun(Exception):
    """Raised by HookContext.run_tool and private_dir when what a hook needs outside the deployment (its tool,
    its directories) is not there; ``call`` reports ``result``, the failed deployment."""

    def __init__(self, result: HookResult) -> None:
        super().__init__(result.stderr)
        self.result = result


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


# -- results ------------------------------------------------------------------------------------
def decode(data: bytes, dropped: int = 0) -> str:
    """UTF-8 with replacement (SPEC §8.0); a cut tail states how much was dropped (SPEC §12.11)."""
    text = data.decode("utf-8", "replace")
    if dropped:
        text = "[... %d bytes of earlier output cut ...]\n%s" % (dropped, text)
    return text


def result_from_proc(
    result: "ProcResult", ctx: HookContext, outputs: Optional[Dict[str, Any]] = None
) -> HookResult:
    """A HookResult from a finished tool: decoded, bounded output; 124 and a last line naming the timeout."""
    stdout = decode(result.stdout, result.stdout_truncated)
    stderr = decode(result.stderr, result.stderr_truncated)
    status = result.returncode
    if result.timed_out:
        status = TIMEOUT_STATUS
        if stderr and not stderr.endswith("\n"):
            stderr += "\n"
        stderr += timeout_message(ctx.timeout or 0) + "\n"
    return HookResult(outputs=dict(outputs or {}), stdout=stdout, stderr=stderr, status_code=status)


def options_of(deployment: Deployment) -> Dict[str, Any]:
    """The deployment's ``options`` object; absent is empty (any other type is refused by ``shape_problem``)."""
    return deployment.get("options") or {}


def string_option(options: Dict[str, Any], key: str) -> str:
    """A string option; empty strings and nulls count as unset (SPEC §8.2)."""
    value = options.get(key)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise BadDeployment("option %s must be a string" % key)
    return value


def hostname_f(ctx: HookContext) -> str:
    """The host's name as ``hostname -f`` prints it (as the originals' puppet and chef hooks asked); "" on failure."""
    try:
        result = ctx.run(["hostname", "-f"])
    except OSError as exc:
        LOG.debug("hostname -f cannot be run: %s", exc.strerror)
        return ""
    if result.returncode or result.timed_out:
        return ""
    return result.stdout.decode("utf-8", "replace").strip()


def cannot_run(program: str, exc: OSError, remedy: str) -> HookResult:
    """The result for a tool that could not be started: a failure, never a silent success (SPEC §11.18).

    127 when it is not installed (as a shell says), 126 when it exists but cannot be
    executed; deploy_stderr names the program, the reason and ``remedy`` (how to get it,
    or the variable that names another one).
    """
    import errno

    missing = exc.errno == errno.ENOENT
    reason = "not installed" if missing else (exc.strerror or str(exc))
    LOG.error("%s cannot be run: %s", program, reason)
    return HookResult.failure("%s cannot be run: %s (%s)" % (program, reason, remedy), 127 if missing else 126)


def output_files(base_path: str, deployment: Deployment) -> Dict[str, Any]:
    """Declared outputs read from ``<base_path>.<name>`` files, content unchanged; missing files skipped (§8.0)."""
    values: Dict[str, Any] = {}
    for output in deployment.get("outputs") or []:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str) or not name or "/" in name or "\0" in name:
            continue
        try:
            with open("%s.%s" % (base_path, name), encoding="utf-8", errors="replace") as f:
                values[name] = f.read()
        except OSError:
            pass
    return values


def remove_output_files(base_path: str) -> None:
    """Remove ``<base_path>.*`` left by an earlier run of the same id, so stale outputs are never reported."""
    directory, prefix = os.path.split(base_path)
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix + "."):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _owner(name: str, ids: Iterable[str]) -> bool:
    return any(name == i or name.startswith(i + ".") for i in ids)


def prune_dir(directory: str, keep_ids: Iterable[str], gone_ids: Optional[Iterable[str]] = None,
              owner_of: Optional[Callable[[str], Optional[str]]] = None) -> List[str]:
    """Remove the entries of deployments no longer in the metadata (§12.13.15); returns the names removed.

    An entry belongs to the deployment ``owner_of(name)`` names (None: not this hook's
    file, never touched); by default ``<id>`` and ``<id>.<anything>`` belong to ``<id>``.
    With ``gone_ids`` (the dispatcher knows which deployments left: ``ctx.gone_ids``)
    only their entries are removed, so a directory a user pointed elsewhere loses
    nothing else; without it, every entry no kept id owns is removed.
    """
    import shutil

    keep = set(keep_ids)
    gone = None if gone_ids is None else set(gone_ids)
    removed: List[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if owner_of is None:
            if _owner(name, keep) or (gone is not None and not _owner(name, gone)):
                continue
        else:
            owner = owner_of(name)
            if owner is None or owner in keep or (gone is not None and owner not in gone):
                continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(name)
            LOG.debug("Removed %s: its deployment is gone", path)
        except OSError as exc:
            LOG.warning("Could not remove %s: %s", path, exc.strerror)
    return removed


def suffix_owner(*suffixes: str) -> Callable[[str], Optional[str]]:
    """An ``owner_of`` for prune_dir: ``<id><suffix>`` belongs to ``<id>``, any other name to nobody."""
    def owner(name: str) -> Optional[str]:
        for suffix in suffixes:
            if name.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return None

    return owner


def ensure_private_dir(path: str) -> None:
    """Create a hook directory 0700 when missing (SPEC §8.0)."""
    os.makedirs(path, mode=0o700, exist_ok=True)


# -- executable form ----------------------------------------------------------------------------
def setup_hook_logging() -> None:
    """Hooks log to stderr in the dispatcher's format, level DEBUG (SPEC §8.0), secrets redacted."""
    setup_logging(level=logging.DEBUG, fmt=HEAT_CONFIG_FORMAT, datefmt=None)


def context_for(deployment: Deployment, environ: Optional[Mapping[str, str]] = None) -> HookContext:
    env = dict(os.environ if environ is None else environ)
    return HookContext(environ=env, timeout=hook_timeout(deployment, env))


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


def refused(deployment: Deployment) -> Optional[HookResult]:
    """The failed result for a deployment a hook must not run (logged in one line), or None."""
    message = refusal(deployment)
    if message is None:
        return None
    LOG.error("Refused: %s", message)
    return HookResult.failure("refused: %s" % message)


def call(hook: Hook, deployment: Deployment, ctx: HookContext) -> HookResult:
    """Run a built-in hook; a crash becomes a failed result with a one-line reason, never a lost deployment."""
    register_input_secrets(deployment)
    refused_result = refused(deployment)
    if refused_result is not None:
        return refused_result
    try:
        return hook(deployment, ctx)
    except ToolCannotRun as exc:
        return exc.result
    except BadDeployment as exc:
        LOG.error("Refused: %s", exc)
        return HookResult.failure("refused: %s" % exc)
    except Exception as exc:  # the deployment must still be reported
        LOG.exception("Hook crashed")
        return HookResult.failure("hook crashed: %s: %s" % (type(exc).__name__, exc))


def read_deployment(stdin: Any) -> Optional[Deployment]:
    """The deployment object on ``stdin``, or None after logging one line saying why not.

    Read as bytes where there are bytes, so that text that is not UTF-8, or JSON nested
    too deeply, is that one line too (agent_common.documents), not a traceback.
    """
    from agent_common.documents import loads_json

    try:
        deployment = loads_json(getattr(stdin, "buffer", stdin).read(), "stdin")
    except ValueError as exc:
        LOG.error("%s", exc)
        return None
    if not isinstance(deployment, dict):
        LOG.error("stdin: not a deployment JSON object")
        return None
    return deployment


def serve(hook: Hook, stdin: Any = None, stdout: Any = None) -> int:
    """The stdin-JSON → stdout-JSON protocol of SPEC §6.13 around a built-in hook."""
    setup_hook_logging()
    stdout = stdout or sys.stdout
    deployment = read_deployment(stdin or sys.stdin)
    if deployment is None:
        return 1
    result = call(hook, deployment, context_for(deployment))
    json.dump(result.signal_data(), stdout)
    stdout.flush()
    return 0

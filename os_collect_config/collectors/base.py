"""The contract every collector follows (SPEC §2.3), and what the loop gives it.

A collector knows one metadata source: it declares its options, spelled as in the
original, and ``collect()`` returns the ordered ``(key, value)`` pairs of one poll,
or raises ``NotConfigured`` / ``Unavailable``.  A collector object lives as long as
the process, so it may keep its HTTP client, a Keystone session (and its token) or
validators between polls; anything worth keeping across restarts goes through
``ctx.state`` into the cache directory.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import json
import os
import threading

from agent_common.atomic import atomic_write, ensure_dir
from agent_common.documents import loads_json, read_text
from agent_common.record import FrozenRecord, Record, fresh

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, ClassVar, Dict, List, Optional, Sequence, Set, Tuple

    from agent_common.http import HttpClient

#: One collected key and its JSON value. At run time the bare class: the name stays importable by the
#: collectors (which use it in annotations only) without importing typing.
if TYPE_CHECKING:  # pragma: no cover
    Collected = Tuple[str, Any]
else:
    Collected = tuple

#: Sub-directory of the cache dir that holds what we add (validators, tokens, backoff).
STATE_DIRNAME = ".agent-state"


class NotConfigured(Exception):
    """The source has no configuration on this host: logged at DEBUG, adds nothing to the poll."""


class Unavailable(Exception):
    """The source is configured but could not give metadata this time: logged at WARNING, last good data stays.

    ``retry_after`` (seconds) is the server's ``Retry-After``: the loop does not ask again sooner.
    """

    def __init__(self, message: str = "", retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Option(FrozenRecord):
    """One option as the original declares it.

    ``name`` is the declared name with its original dashes/underscores (``metadata-url``,
    ``ca_certificate``): the file key is it with dashes turned into underscores and the
    command-line flag is ``--<group>-<name>`` (SPEC §2.1.2, §2.1.3).
    ``type`` is one of ``str``, ``url``, ``bool``, ``float``, ``int``, ``multi``.
    ``short`` is a one-letter command-line alias (``c`` gives ``-c``), global options only;
    ``dest`` the file key / attribute name when it is not the declared name (``print`` is
    stored as ``print_only``).
    """

    name: str
    type: str = "str"
    default: Any = None
    secret: bool = False
    help: str = ""
    deprecated: bool = False
    short: Optional[str] = None
    dest: Optional[str] = None

    @property
    def key(self) -> str:
        return self.dest or self.name.replace("-", "_")


class StateStore:
    """Small JSON documents a collector keeps across polls and restarts, 0600 in a 0700 dir."""

    def __init__(self, cachedir: str, collector_name: str) -> None:
        self.directory = os.path.join(cachedir, STATE_DIRNAME)
        self.prefix = collector_name

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, "%s.%s.json" % (self.prefix, key))

    def load(self, key: str) -> Any:
        return read_json_safe(self._path(key))  # a damaged or foreign file is as good as none: only an optimisation

    def save(self, key: str, value: Any) -> None:
        ensure_dir(self.directory, 0o700)
        data = json.dumps(value, sort_keys=True)
        if read_text_safe(self._path(key)) != data:
            atomic_write(self._path(key), data, 0o600)


def read_text_safe(path: str) -> Optional[str]:
    """The file's text, or None when it is absent or cannot be used (not UTF-8, not a regular file...).

    For the agent's own files (cache, state): what a damaged disk leaves there is as
    good as nothing, and is replaced by the next write.
    """
    try:
        return read_text(path)
    except (OSError, ValueError):
        return None


def read_json_safe(path: str, default: Any = None) -> Any:
    """The file's JSON value, or ``default`` when it is absent or cannot be used, as ``read_text_safe``."""
    text = read_text_safe(path)
    if text is None:
        return default
    try:
        return loads_json(text, path)
    except ValueError:
        return default


class CollectContext(Record):
    """What the loop hands every collector."""

    cachedir: str
    #: The global ``deployment_key`` list (cfn has its own option, SPEC §2.7.1).
    deployment_keys: Sequence[str] = ("deployments",)
    #: True in print mode: collect, but keep no state and write nothing.
    print_mode: bool = False
    #: Ends the loop's sleep: set by ``wake`` and by SIGHUP.
    wakeup: threading.Event = fresh(threading.Event)
    #: The sources that woke the loop since it last looked (``take_woken``).
    woken: Set[str] = fresh(set)
    woken_lock: threading.Lock = fresh(threading.Lock)
    #: Every option group's values by group name (``keystone`` included), for options shared between collectors.
    groups: Dict[str, Dict[str, Any]] = fresh(dict)

    def state(self, collector_name: str) -> StateStore:
        return StateStore(self.cachedir, collector_name)

    def wake(self, source: str) -> None:
        """Poll now: ``source`` learned of a change between polls (the zaqar websocket).

        A source that brings news has answered, so the loop tries it at once even while it
        is backed off after an earlier failure; otherwise the news would wait out the backoff."""
        with self.woken_lock:
            self.woken.add(source)
        self.wakeup.set()

    def take_woken(self) -> Set[str]:
        """The sources that called ``wake`` since the last call, forgotten here."""
        with self.woken_lock:
            woken, self.woken = self.woken, set()
        return woken


class Collector:
    """Base class: subclasses set ``name`` and ``options`` and implement ``collect``."""

    name: ClassVar[str] = ""
    options: ClassVar[Tuple[Option, ...]] = ()

    def __init__(self, conf: Dict[str, Any], ctx: CollectContext) -> None:
        #: Option values keyed by ``Option.key``, defaults filled in.
        self.conf = conf
        self.ctx = ctx

    def collect(self) -> List[Collected]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or threads; called when the process ends or re-executes."""
        client = self.__dict__.pop("_http_client", None)
        if client is not None:
            client.close()

    def http(self, timeout: float) -> "HttpClient":
        """This collector's HTTP client, made on first use and kept (with its TLS context) between polls.

        Each request still opens its own connection (see agent_common.http). No retries
        here: the loop backs off a failing source as a whole.
        """
        from agent_common.http import HttpClient  # file-only collectors never import the HTTP stack

        client = self.__dict__.get("_http_client")
        if client is None:
            client = self.__dict__["_http_client"] = HttpClient(timeout=timeout)
        client.timeout = timeout
        return client

    def require(self, *keys: str) -> None:
        """Raise NotConfigured naming the first missing option, in the order given (SPEC §2.5.2)."""
        for key in keys:
            if not self.conf.get(key):
                raise NotConfigured("No %s configured." % key)

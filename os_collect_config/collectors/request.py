"""request: a JSON document at a URL, typically Heat metadata in a Swift temp URL object (SPEC §2.9).

Each poll is one conditional GET carrying the validators (ETag, Last-Modified) of
the last good response.  A 304 means "unchanged": the value is then the cache file
the loop wrote from the last good response.  The validators live in
``<cachedir>/.agent-state/`` with a digest of the document they belong to, so a
cache file that does not match them is never mistaken for the current one.

On the idle agent's path: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import hashlib
import json

from agent_common.http import HttpError, Validators, strip_query
from os_collect_config.cache import MISSING, Cache
from os_collect_config.collectors.base import Collected, Collector, NotConfigured, Option, Unavailable
from os_collect_config.merge import explode

TYPE_CHECKING = False  # typing is for type checkers only: importing it costs the idle agent ~0.45 MiB
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional


def digest(value: Any) -> str:
    """A stable fingerprint of a JSON value (key order and whitespace do not matter)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


class RequestCollector(Collector):
    name = "request"
    options = (
        Option("metadata-url", type="url", help="URL to query for metadata (a JSON object)."),
        Option("timeout", type="float", default=10.0,
               help="Seconds to wait for the connection and read request timeout."),
    )

    def collect(self) -> List[Collected]:
        url = self.conf.get("metadata_url")
        if not url:
            raise NotConfigured("No metadata_url configured.")
        state = None if self.ctx.print_mode else self.ctx.state(self.name)
        # Validators belong to the object, not to one signature of its temp URL (the query may be re-signed).
        url_id = hashlib.sha256(strip_query(url).encode("utf-8")).hexdigest()
        cached = Cache(self.ctx.cachedir).load(self.name)
        validators = self._validators(state, url_id, cached)
        try:
            result = self.http(self.conf.get("timeout") or 10.0).conditional_get(url, validators)
        except HttpError as exc:
            raise Unavailable(str(exc), exc.retry_after) from exc
        if result.not_modified:
            if not validators:
                raise Unavailable("GET answered 304 Not Modified to a request without validators")
            metadata = cached
        else:
            metadata = _parse_object(result.body or b"")
            if state is not None:
                saved: Dict[str, Optional[str]] = dict(result.validators.to_dict())
                saved.update(url=url_id, digest=digest(metadata))
                state.save("validators", saved)
        return explode(metadata, self.ctx.deployment_keys, self.name)

    @staticmethod
    def _validators(state: Any, url_id: str, cached: Any) -> Optional[Validators]:
        """The saved validators, if they belong to this URL and to the cache file we would fall back on."""
        if state is None or cached is MISSING:
            return None
        saved = state.load("validators")
        if not isinstance(saved, dict) or saved.get("url") != url_id or saved.get("digest") != digest(cached):
            return None
        return Validators.from_dict(saved) or None


def _parse_object(body: bytes) -> Dict[str, Any]:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Unavailable("response is not JSON (%s)" % exc) from exc
    if not isinstance(value, dict):
        raise Unavailable("response is JSON but not an object")
    return value

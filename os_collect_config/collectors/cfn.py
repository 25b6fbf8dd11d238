"""The cfn collector (SPEC §2.7): resource metadata from heat-api-cfn's signed DescribeStackResource.

Every request is signed with a fresh HMAC; ``StackName`` is signed and sent when
``stack-name`` is set; a signed ``Timestamp`` makes a captured URL stop working once
the server's credential TTL has passed.  A reply that is not the expected XML, and
a deployment without ``config``, make the source unavailable with a warning naming
the path.  Several paths on one resource cost one request per poll.  heat-api-cfn
sends no validators, so there is no conditional request.

On the idle path of an agent with Keystone or CFN sources: see docs/architecture.md, start-up policy.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import os
import xml.etree.ElementTree as ElementTree
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from agent_common.documents import read_text
from agent_common.http import HttpClient, HttpError
from agent_common.logs import describe_error, register_secret
from os_collect_config.collectors.base import Collected, Collector, NotConfigured, Option, Unavailable
from os_collect_config.merge import explode

LOG = logging.getLogger(__name__)

DEFAULT_HINT = "/var/lib/heat-cfntools/cfn-metadata-server"


def sign_v2(secret: str, verb: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """AWS signature version 2 (SPEC §2.7.4), computed afresh for every request."""
    canonical = "&".join(
        "%s=%s" % (quote(k, safe="-_.~"), quote(params[k], safe="-_.~")) for k in sorted(params) if k != "Signature"
    )
    text = "%s\n%s\n%s\n%s" % (verb, host, path, canonical)
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _local(tag: str) -> str:
    """An element's name without its ``{namespace}``: AWS replies carry one, Heat's do not."""
    return tag.rsplit("}", 1)[-1]


def _child(element: Any, name: str) -> Optional[Any]:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def parse_detail(xml_text: str) -> Any:
    """The ``StackResourceDetail`` element of a DescribeStackResource reply; Unavailable if there is none."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise Unavailable("the reply is not well-formed XML (%s)" % exc) from exc
    result = root if _local(root.tag) == "DescribeStackResourceResult" else _child(root, "DescribeStackResourceResult")
    detail = _child(result, "StackResourceDetail") if result is not None else None
    if detail is None:
        raise Unavailable("the reply has no DescribeStackResourceResult/StackResourceDetail element")
    return detail


def field_value(detail: Any, path: str, field: str, sub_keys: List[str]) -> Dict[str, Any]:
    """The JSON object at ``field[.sub.keys]`` of one resource detail (SPEC §2.7.5)."""
    element = _child(detail, field)
    if element is None:
        raise Unavailable("path %s does not exist in the reply" % path)
    text = (element.text or "").strip()
    try:
        value = json.loads(text) if text else {}  # Heat sends an empty element for empty metadata
    except ValueError as exc:
        raise Unavailable("path %s failed to parse as JSON (%s)" % (path, exc)) from exc
    for key in sub_keys:
        if not isinstance(value, dict) or key not in value:
            raise Unavailable("sub-key %s of path %s does not exist" % (key, path))
        value = value[key]
    if not isinstance(value, dict):
        raise Unavailable("path %s holds a %s, not an object" % (path, type(value).__name__))
    return value


class CfnCollector(Collector):
    name = "cfn"
    options = (
        Option("metadata-url", type="url", help="URL to query for CloudFormation Metadata"),
        Option("heat-metadata-hint", default=DEFAULT_HINT,
               help="Local file to read for metadata url if not explicitly specified"),
        Option("ca_certificate", help="CA Certificate path"),
        Option("stack-name", help="Stack name to describe"),
        Option("path", type="multi", help="Path to Metadata"),
        Option("secret-access-key", secret=True, help="Secret Access Key"),
        Option("access-key-id", help="Access Key ID"),
        Option("deployment-key", type="multi", default=["deployments"], deprecated=True,
               help='DEPRECATED, use global configuration option "deployment-key"'),
        Option("timeout", type="float", default=10.0,
               help="Seconds to wait for the connection and read request timeout."),
    )

    def __init__(self, conf, ctx) -> None:
        super().__init__(conf, ctx)
        #: The URL read from the hint file is kept for the life of the process, as the original does.
        self._hinted_url: Optional[str] = None

    def _metadata_url(self) -> str:
        url = self.conf.get("metadata_url") or self._hinted_url
        if url:
            return url
        hint = self.conf.get("heat_metadata_hint")
        if hint and os.path.exists(hint):
            try:
                text = read_text(hint)  # a FIFO is refused, not waited on for ever
            except (OSError, ValueError) as exc:
                raise NotConfigured("cannot read heat_metadata_hint %s: %s"
                                    % (hint, getattr(exc, "strerror", None) or exc)) from exc
            if text is not None:
                self._hinted_url = "%s/v1/" % text.strip()
                return self._hinted_url
        raise NotConfigured("No metadata_url configured.")

    def _paths(self) -> List[Tuple[str, str, str, List[str]]]:
        """(path, resource, field, sub-keys) for each configured path, all checked before any request."""
        out = []
        for path in self.conf["path"]:
            if "." not in path:
                LOG.error("Path not in format resource.field[.x.y] (%s)", path)
                raise NotConfigured("path %s is not resource.field[.x.y]" % path)
            resource, field, *sub_keys = path.split(".")
            out.append((path, resource, field, sub_keys))
        return out

    def collect(self) -> List[Collected]:
        url = self._metadata_url()
        if not self.conf.get("access_key_id"):
            raise NotConfigured("No Access Key ID configured.")
        if not self.conf.get("secret_access_key"):
            raise NotConfigured("No Secret Access Key configured.")
        if not self.conf.get("path"):
            raise NotConfigured("No path configured.")
        register_secret(self.conf["secret_access_key"])
        paths = self._paths()
        details: Dict[str, Any] = {}
        merged: Dict[str, Any] = {}
        for path, resource, field, sub_keys in paths:
            if resource not in details:
                details[resource] = parse_detail(self._describe(url, resource))
            merged.update(field_value(details[resource], path, field, sub_keys))
        return explode(merged, self.conf.get("deployment_key") or ["deployments"], self.name)

    def _client(self) -> HttpClient:
        client = self.http(float(self.conf.get("timeout") or 10.0))
        client.verify = self.conf.get("ca_certificate") or True
        return client

    def _describe(self, url: str, resource: str) -> str:
        params = {
            "Action": "DescribeStackResource",
            "LogicalResourceId": resource,
            "AWSAccessKeyId": self.conf["access_key_id"],
            "SignatureVersion": "2",
            "SignatureMethod": "HmacSHA256",
            "Timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if self.conf.get("stack_name"):
            params["StackName"] = self.conf["stack_name"]
        parts = urlsplit(url)
        params["Signature"] = sign_v2(self.conf["secret_access_key"], "GET", parts.netloc, parts.path or "/", params)
        try:
            response = self._client().request("GET", url, params=params,
                                              headers={"Content-Type": "application/json"})
        except HttpError as exc:
            raise Unavailable("DescribeStackResource of %s: %s" % (resource, exc), exc.retry_after) from exc
        except Exception as exc:  # a bad URL or CA path: name it, never a traceback
            raise Unavailable("DescribeStackResource of %s: %s" % (resource, describe_error(exc))) from exc
        return response.text

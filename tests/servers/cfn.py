"""A loopback heat-api-cfn: signed ``DescribeStackResource`` and pre-signed resource signals.

The signature is checked as Heat's ec2token middleware has Keystone check it
(AWS signature version 2): HMAC-SHA256 over ``VERB\\nhost\\npath\\ncanonical-query``,
the host as the ``Host`` header carries it and, failing that, without its port
(Keystone retries that way for clients that sign without the port).  Keystone is
not involved here: the server knows the secret of each access key.

The XML answer is what Heat's XMLResponseSerializer produces, without a namespace;
``namespace`` makes it carry the AWS one, and ``raw_reply`` replaces it entirely
(to test broken replies).  The signature helper here is written independently of
the collector's, so that a bug in one cannot hide in the other.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import quote, unquote, urlencode, urlsplit
from xml.sax.saxutils import escape

from tests.servers.base import LoopbackServer, Request, Response

AWS_NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


def v2_signature(secret: str, verb: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """AWS signature v2 the way keystoneclient's Ec2Signer computes it."""
    pairs = []
    for key in sorted(params):
        if key == "Signature":
            continue
        pairs.append("%s=%s" % (quote(key, safe="-_.~"), quote(str(params[key]), safe="-_.~")))
    string_to_sign = "\n".join([verb, host, path, "&".join(pairs)])
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _error(status: int, code: str, message: str) -> Response:
    body = ("<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error>"
            "</ErrorResponse>" % (code, escape(message)))
    return Response(status, body, {"Content-Type": "application/xml"})


@dataclass
class Signal:
    arn: str
    body: Any
    params: Dict[str, str]


class CfnServer(LoopbackServer):
    """heat-api-cfn for one project; ``metadata_url`` is what Heat puts in ``[cfn] metadata_url``."""

    def __init__(self, credentials: Optional[Dict[str, str]] = None, project_id: str = "project") -> None:
        super().__init__()
        #: access key id → secret key.
        self.credentials: Dict[str, str] = dict(credentials or {})
        self.project_id = project_id
        self.stacks: Dict[str, str] = {}
        self.metadata: Dict[tuple, Any] = {}
        #: Answer with the AWS namespace on the root element (real heat-api-cfn does not).
        self.namespace = False
        #: When set, DescribeStackResource answers 200 with exactly this body.
        self.raw_reply: Optional[str] = None
        self.signals: List[Signal] = []
        #: Statuses to answer the next signals with, consumed one per signal (to test retries).
        self.signal_statuses: List[int] = []
        #: Signatures that verified (to prove one fresh signature per path).
        self.verified = 0
        #: A signed ``Timestamp`` older than this is refused, as Keystone's ``[credential] auth_ttl`` (15 min).
        self.credential_ttl_s = 900.0
        self._lock = threading.Lock()
        self.add_route("GET", r"/v1/?", self._describe)
        self.add_route("POST", r"/v1/signal/(?P<arn>.+)", self._signal)

    @property
    def metadata_url(self) -> str:
        return self.url + "/v1/"

    def set_metadata(self, stack_name: str, resource: str, metadata: Any) -> None:
        self.stacks.setdefault(stack_name, str(uuid.uuid4()))
        self.metadata[(stack_name, resource)] = metadata

    # -- signature -----------------------------------------------------------------------------
    def _verify(self, request: Request, verb: str) -> Optional[Response]:
        params = {k: v[0] for k, v in request.query.items()}
        access = params.get("AWSAccessKeyId")
        signature = params.get("Signature")
        if not access or not signature:
            return _error(400, "IncompleteSignature", "The request signature does not conform to AWS standards")
        secret = self.credentials.get(access)
        if secret is None:
            return _error(403, "InvalidClientTokenId", "The AWS Access Key Id you provided does not exist")
        if params.get("SignatureVersion") != "2" or params.get("SignatureMethod") != "HmacSHA256":
            return _error(400, "IncompleteSignature", "Only SignatureVersion 2 with HmacSHA256 is accepted")
        host = (request.header("Host") or "").lower()
        path = unquote(urlsplit(request.raw_path).path)
        candidates = [host] + ([host.rsplit(":", 1)[0]] if ":" in host else [])
        for candidate in candidates:
            expected = v2_signature(secret, verb, candidate, path, params)
            if hmac.compare_digest(expected, signature):
                return self._check_timestamp(params.get("Timestamp"))
        return _error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")

    def _check_timestamp(self, timestamp: Optional[str]) -> Optional[Response]:
        """Keystone accepts an unsigned-time request, but a signed Timestamp must be recent."""
        if timestamp is not None:
            try:
                when = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
            except ValueError:
                return _error(403, "AuthFailure", "Credential timestamp is invalid")
            age = (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()
            if age > self.credential_ttl_s:
                return _error(403, "AuthFailure", "Credential is expired")
        with self._lock:
            self.verified += 1
        return None

    def signed_signal_url(self, access_key: str, stack_name: str, stack_id: str, resource: str,
                          timestamp: bool = True) -> str:
        """A pre-signed CFN_SIGNAL URL, built the way Heat's signal responder builds ``deploy_signal_id``."""
        arn = "arn:openstack:heat::%s:stacks/%s/%s/resources/%s" % (
            quote(self.project_id, ""), stack_name, stack_id, resource)
        quoted_path = "/v1/signal/" + quote(arn)
        params = {"SignatureMethod": "HmacSHA256", "SignatureVersion": "2", "AWSAccessKeyId": access_key}
        if timestamp:
            params["Timestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        host = urlsplit(self.url).netloc.lower()
        params["Signature"] = v2_signature(self.credentials[access_key], "POST", host, unquote(quoted_path), params)
        return "%s%s?%s" % (self.url.lower(), quoted_path, urlencode(params))

    # -- handlers ------------------------------------------------------------------------------
    def _describe(self, request: Request, match: Any) -> Response:
        refused = self._verify(request, "GET")
        if refused:
            return refused
        if request.q("Action") != "DescribeStackResource":
            return _error(400, "InvalidAction", "Unsupported action")
        if self.raw_reply is not None:
            return Response(200, self.raw_reply, {"Content-Type": "application/xml"})
        stack, resource = request.q("StackName"), request.q("LogicalResourceId")
        if stack is None:
            return _error(400, "MissingParameter", "StackName is required")
        if (stack, resource) not in self.metadata:
            return _error(400, "ValidationError", "Resource %s not found in stack %s" % (resource, stack))
        return Response(200, self._describe_xml(stack, resource), {"Content-Type": "application/xml"})

    def _describe_xml(self, stack: str, resource: str) -> str:
        metadata = self.metadata[(stack, resource)]
        stack_id = self.stacks[stack]
        arn = "arn:openstack:heat::%s:stacks/%s/%s" % (self.project_id, stack, stack_id)
        fields = [
            ("Description", ""),
            ("LastUpdatedTimestamp", "2026-01-01T00:00:00Z"),
            ("StackId", arn),
            ("StackName", stack),
            ("ResourceStatusReason", "state changed"),
            ("ResourceType", "OS::Nova::Server"),
            ("LogicalResourceId", resource),
            ("PhysicalResourceId", str(uuid.uuid5(uuid.NAMESPACE_URL, arn + resource))),
            ("ResourceStatus", "CREATE_COMPLETE"),
        ]
        # Heat writes Metadata as JSON text, and an empty element when the metadata is empty.
        items = ["<%s>%s</%s>" % (k, escape(v), k) for k, v in fields]
        items.insert(2, "<Metadata>%s</Metadata>" % escape(json.dumps(metadata)) if metadata else "<Metadata />")
        xmlns = ' xmlns="%s"' % AWS_NAMESPACE if self.namespace else ""
        return ("<DescribeStackResourceResponse%s><DescribeStackResourceResult><StackResourceDetail>%s"
                "</StackResourceDetail></DescribeStackResourceResult></DescribeStackResourceResponse>"
                % (xmlns, "".join(items)))

    def _signal(self, request: Request, match: Any) -> Response:
        refused = self._verify(request, "POST")
        if refused:
            return refused
        with self._lock:
            status = self.signal_statuses.pop(0) if self.signal_statuses else 200
        if status != 200:
            return _error(status, "ServiceUnavailable", "simulated")
        try:
            body = json.loads(request.body.decode("utf-8")) if request.body else None
        except ValueError:
            return _error(400, "MalformedInput", "The body is not JSON")
        with self._lock:
            self.signals.append(Signal(unquote(match.group("arn")), body,
                                       {k: v[0] for k, v in request.query.items()}))
        return Response(200, b"", {"Content-Type": "application/json"})

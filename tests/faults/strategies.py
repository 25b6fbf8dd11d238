"""Hypothesis strategies for the fuzz tests: documents that are right, nearly right, or of the wrong shape.

Values mix what Heat sends (tests/support/deployments.py's shapes) with the edge cases issue 12
found by hand: wrong types where objects are expected, ids that cannot name a file, unusable
signal URLs, non-finite numbers, deep nesting, bytes that are not UTF-8. Every URL points at
127.0.0.1 or cannot be used at all: a generated document never reaches another host.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

from hypothesis import strategies as st

from tests.support.sandbox import PLANTED_SECRETS

PASSWORD, SECRET_KEY, TEMP_URL_SIG, TOKEN = PLANTED_SECRETS

#: JSON scalars, including the ones that trip code expecting objects.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=12)
#: Names as metadata uses them, with the awkward ones: dots, slashes, very long, unicode, empty.
names = st.one_of(st.sampled_from(["", ".", "..", "a/b", "../x", "x.notify", "x", "ok_name", "ünï", "a:b", "-x",
                                   "x" * 251, "x" * 300, "deploy_password", "name with space"]),
                  st.text(alphabet="abcXYZ019._-:/\\", min_size=1, max_size=12))
ids = st.one_of(st.uuids().map(str), names, json_values)


def deep(depth: int) -> str:
    """JSON nested ``depth`` deep (issue 12 §9: 100,000 gave a RecursionError)."""
    return "[" * depth + "]" * depth


def signal_inputs(signal_url: str) -> st.SearchStrategy:
    """Signal inputs: a working loopback route, a planted secret, or a URL that cannot be used."""
    secret_url = "%s/sig?temp_url_sig=%s&temp_url_expires=1" % (signal_url, TEMP_URL_SIG)
    bad_urls = st.sampled_from(["not a url", "", "http://[::1", "file:///etc/hostname", "ftp://127.0.0.1/x",
                                "http://127.0.0.1:9/closed", "http://127.0.0.1:0/", "http://", "//127.0.0.1/x",
                                "http://127.0.0.1:99999/"])
    transports = st.sampled_from(["CFN_SIGNAL", "TEMP_URL_SIGNAL", "NO_SIGNAL", "HEAT_SIGNAL", "ZAQAR_SIGNAL",
                                  "", "BOGUS"])
    url = st.one_of(st.just(signal_url + "/cfn"), st.just(secret_url), bad_urls, json_values)

    @st.composite
    def build(draw: Any) -> List[Dict[str, Any]]:
        transport = draw(transports)
        items = [{"name": "deploy_signal_transport", "type": "String", "value": transport}]
        if transport in ("CFN_SIGNAL", "TEMP_URL_SIGNAL") or draw(st.booleans()):
            items.append({"name": "deploy_signal_id", "type": "String", "value": draw(url)})
            items.append({"name": "deploy_signal_verb", "type": "String",
                          "value": draw(st.sampled_from(["POST", "PUT", "GET", "", "DELETE"]))})
        if transport in ("HEAT_SIGNAL", "ZAQAR_SIGNAL"):
            # Keystone at a closed loopback port: the route exists, and fails without leaving 127.0.0.1.
            items += [{"name": "deploy_auth_url", "type": "String", "value": "http://127.0.0.1:9/v3"},
                      {"name": "deploy_user_id", "type": "String", "value": "u"},
                      {"name": "deploy_password", "type": "String", "value": PASSWORD},
                      {"name": "deploy_project_id", "type": "String", "value": "p"}]
        return items

    return build()


scripts = st.one_of(
    st.sampled_from([
        "#!/bin/sh\necho out\necho err >&2\n",
        "#!/bin/sh\necho -n 'value' > $heat_outputs_path.result\nexit 0\n",
        "#!/bin/sh\nexit 3\n",
        "#!/bin/sh\necho '{\"deploy_status_code\": 5}'\n",
        "#!/bin/sh\nprintf '\\377\\376 not utf-8'\n",
        "#!/bin/sh\necho %s\n" % PASSWORD,  # a hook may print a secret it was given: it is in its result only
        "not a script at all",
        "",
    ]),
    json_values,
)

inputs_items = st.lists(st.fixed_dictionaries(
    {"name": names, "value": json_values},
    optional={"type": st.sampled_from(["String", "Number", "Json", "Boolean", "CommaDelimitedList", "Bogus"]),
              "description": scalars}), max_size=4)
outputs_items = st.one_of(
    st.lists(st.fixed_dictionaries({"name": names}, optional={"type": scalars, "error_output": scalars}),
             max_size=3),
    scalars, st.dictionaries(st.text(max_size=5), scalars, max_size=2))
options = st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
    "timeout": st.one_of(st.sampled_from([1, 0, -1, 0.5, "abc", "nan", "inf", None, 1e308]), scalars)}),
    json_values)
groups = st.one_of(st.sampled_from(["script", "script", "Heat::Ungrouped", "os-apply-config", "no-such-hook",
                                    "component", "../script", "json-file", "apply-config", ""]), json_values)
components = st.fixed_dictionaries({"configs": st.one_of(st.lists(st.fixed_dictionaries(
    {"actions": st.one_of(st.lists(st.sampled_from(["CREATE", "UPDATE", "DELETE"]), max_size=3), json_values),
     "config": scripts, "tool": st.sampled_from(["script", "json-file", "nope"])}), max_size=3), json_values)})


def deployments(signal_url: str) -> st.SearchStrategy:
    """One deployment, as Heat builds it (SPEC §6.4), with any field possibly of the wrong shape."""

    @st.composite
    def build(draw: Any) -> Any:
        group = draw(groups)
        dep: Dict[str, Any] = {
            "id": draw(ids),
            "name": draw(st.one_of(names, json_values)),
            "group": group,
            "creation_time": "2024-03-05T09:12:44Z",
            "options": draw(options),
            "config": draw(components if group == "component" else scripts),
            "outputs": draw(outputs_items),
        }
        heat_inputs = [{"name": "deploy_action", "type": "String",
                        "value": draw(st.sampled_from(["CREATE", "UPDATE", "DELETE", "", "BOGUS"]))},
                       {"name": "deploy_server_id", "type": "String", "value": "srv"},
                       {"name": "deploy_stack_id", "type": "String", "value": "web/1e4c"},
                       {"name": "deploy_resource_name", "type": "String", "value": "deploy_x"}]
        dep["inputs"] = draw(st.one_of(
            st.builds(lambda a, b: a + heat_inputs + b, inputs_items, signal_inputs(signal_url)),
            scalars, st.dictionaries(st.text(max_size=5), scalars, max_size=2)))
        for key in draw(st.sets(st.sampled_from(sorted(dep)), max_size=2)):
            if draw(st.booleans()):
                del dep[key]
            else:
                dep[key] = draw(json_values)
        return dep

    return build()


def deployments_documents(signal_url: str) -> st.SearchStrategy:
    """The text of a deployments file: mostly a list of deployments, sometimes anything else."""
    many = st.lists(deployments(signal_url), min_size=1, max_size=6)
    return st.one_of(
        many.map(json.dumps), many.map(json.dumps), many.map(json.dumps),
        json_values.map(json.dumps),
        st.sampled_from(["", "  \n", "null", "[]", "{", "[1, 2", deep(100_000), "[NaN]", '{"deployments": []}']),
    )


#: Bytes a metadata or deployments file may hold: JSON, nearly JSON, or not UTF-8 at all.
raw_documents = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"\xff\xfe{}", b'{"a": "\xc3\x28"}', b"", b"{", deep(100_000).encode(),
                     b'{"a": NaN}', b'{"deployments": 5}', b'{"deployments": [5, "x", null]}',
                     b'{"deployments": [{"name": "x", "group": "os-apply-config", "config": 5}]}',
                     b'{"deployments": {"a": 1}}', b"[1,2,3]", b'"string"']),
    st.binary(max_size=64),
)

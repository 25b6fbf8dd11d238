"""Value classes without dataclasses: equality, repr, hashability and immutability as a dataclass gives them."""
import pytest

from agent_common.http import ConditionalResult, Validators
from agent_common.keystone import Credentials
from agent_common.proc import ProcResult
from os_collect_config.collectors.base import Option


def test_mutable_record_compares_fields_and_is_unhashable():
    assert Validators('"a"', "Mon") == Validators(etag='"a"', last_modified="Mon")
    assert Validators('"a"') != Validators('"b"')
    assert ProcResult(0, b"", b"", 0.0) != ProcResult(0, b"", b"", 0.0, timed_out=True)
    assert Validators() != object() and Validators().__eq__(object()) is NotImplemented
    with pytest.raises(TypeError):
        hash(Validators())
    v = Validators()
    v.etag = '"c"'
    assert v == Validators('"c"')


def test_repr_names_fields_in_order_and_leaves_out_skipped_ones():
    assert repr(Validators('"a"')) == "Validators(etag='\"a\"', last_modified=None)"
    result = ConditionalResult(True, None, Validators(), response=object())
    assert repr(result) == ("ConditionalResult(not_modified=True, body=None, "
                            "validators=Validators(etag=None, last_modified=None))")
    # A password never reaches a log line through a repr.
    assert "s3cret" not in repr(Credentials("http://ks", "u", "s3cret", "p"))


def test_frozen_record_refuses_assignment_and_hashes_its_fields():
    opt = Option("metadata-url", type="url")
    with pytest.raises(AttributeError):
        opt.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del opt.type
    assert opt == Option("metadata-url", "url") and hash(opt) == hash(Option("metadata-url", "url"))
    assert {Credentials("a", "u", "p", "x"): 1}[Credentials("a", "u", "p", "x")] == 1


def test_fields_declared_once_make_the_constructor():
    from agent_common.record import Record, fresh

    class Sample(Record):
        name: str
        count: int = 0
        tags: list = fresh(list)
        _note = "not a field"

    assert Sample._fields == ("name", "count", "tags")
    one, two = Sample("a"), Sample(name="a", count=0)
    assert one == two and one.tags == [] and one.tags is not two.tags  # a fresh default per instance
    assert Sample("b", 2, ["x"]) == Sample(tags=["x"], count=2, name="b")
    assert "count" not in Sample.__dict__  # defaults live in _defaults, not as shadowing class attributes
    for args, kwargs, why in [((), {}, "missing required argument 'name'"),
                              (("a",), {"colour": 1}, "unexpected keyword argument 'colour'"),
                              (("a",), {"name": "b"}, "multiple values for argument 'name'"),
                              (("a", 1, [], 4), {}, "at most 3 arguments")]:
        with pytest.raises(TypeError, match=why):
            Sample(*args, **kwargs)

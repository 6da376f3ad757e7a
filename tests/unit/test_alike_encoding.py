"""The alike-message encoders against the whole-message one: a message
built from a template and an item's (id, index, args, kwargs) must be the
one ``encode_task_messages`` builds from the whole message dict, and the
AMQP parts must be kombu's body and Celery's reprs."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_encode_matches_kombu import args_st, kwargs_st, reference
from turbogroup import _core

TEMPLATE = {
    "task_id": "template-id",
    "name": "t.add",
    "args": (),
    "kwargs": {},
    "group_id": "g",
    "origin": "gen1@host",
    "reply_to": "r",
    "headers": {"h": [1, 2]},
    "properties": {"foo": "bar"},
    "priority": 0,
    "routing_key": "q",
}
TAG = re.compile(rb'"delivery_tag": "[0-9a-f-]{36}"')
items_st = st.lists(st.tuples(args_st, kwargs_st), min_size=1, max_size=4)


def untagged(envelope):
    return TAG.sub(b'"delivery_tag": "<tag>"', envelope)


def whole(items):
    return _core.encode_task_messages(
        [
            {**TEMPLATE, "task_id": f"id-{i}", "group_index": i, "args": a, "kwargs": k}
            for i, (a, k) in enumerate(items)
        ]
    )


def alike(items):
    return [(f"id-{i}", i, a, k) for i, (a, k) in enumerate(items)]


def assert_as_whole(want, got, checked):
    """Each alike envelope (and check) is the whole message's, or each is
    unsupported."""
    for w, g, c in zip(want, got, checked, strict=True):
        if isinstance(w, _core.Unsupported):
            assert isinstance(g, _core.Unsupported) and isinstance(c, _core.Unsupported)
        else:
            assert untagged(g) == untagged(w)
            assert c is None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st)
def test_alike_envelopes_are_the_whole_messages(items):
    want = whole(items)
    got = _core.encode_alike_messages(TEMPLATE, alike(items))
    checked = _core.encode_alike_messages(TEMPLATE, alike(items), check=True)
    assert_as_whole(want, got, checked)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st)
def test_an_lpush_command_carries_the_alike_envelopes(items):
    want = whole(items)
    if any(isinstance(w, _core.Unsupported) for w in want):
        return
    command = _core.lpush_alike_command("q\x06\x163", TEMPLATE, alike(items))
    # random tags of the same length: the bulk string lengths match too
    expected = _core.lpush_command("q\x06\x163", want)
    assert untagged(command) == untagged(expected)


# what a receiver adds: new keys, and keys that replace the template's or a
# standard header in place (those messages are written whole)
added_st = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["traceparent", "tracestate", "h", "task", "x-é"]),
        st.one_of(st.text(max_size=8), st.integers(), st.lists(st.integers(), max_size=2)),
        max_size=3,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(args_st, kwargs_st, added_st), min_size=1, max_size=4))
def test_headers_of_their_own_are_a_dict_update_of_the_templates(items):
    want = _core.encode_task_messages(
        [
            {**TEMPLATE, "task_id": f"id-{i}", "group_index": i, "args": a, "kwargs": k,
             "headers": {**TEMPLATE["headers"], **(added or {})}}
            for i, (a, k, added) in enumerate(items)
        ]
    )  # fmt: skip
    alike_items = alike([(a, k) for a, k, _ in items])
    headers = [added for _, _, added in items]
    got = _core.encode_alike_messages(TEMPLATE, alike_items, headers=headers)
    checked = _core.encode_alike_messages(TEMPLATE, alike_items, check=True, headers=headers)
    assert_as_whole(want, got, checked)
    if not any(isinstance(w, _core.Unsupported) for w in want):
        command = _core.lpush_alike_command("q", TEMPLATE, alike_items, headers=headers)
        assert untagged(command) == untagged(_core.lpush_command("q", want))


def test_headers_must_be_one_dict_or_none_per_item():
    items = alike([((1,), {}), ((2,), {})])
    for wrong in ([None], [None, None, None]):
        with pytest.raises(TypeError, match="headers than items"):
            _core.encode_alike_messages(TEMPLATE, items, headers=wrong)
    first, second = _core.encode_alike_messages(TEMPLATE, items, headers=[["x", 1], {}])
    assert isinstance(first, _core.Unsupported) and "must be a dict" in first.reason
    assert isinstance(second, bytes)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items_st)
def test_amqp_parts_are_kombus_body_and_celerys_reprs(items):
    parts = _core.amqp_alike_parts(TEMPLATE, alike(items))
    sizes = _core.amqp_alike_parts(TEMPLATE, alike(items), check=True)
    for (args, kwargs), part, size in zip(items, parts, sizes, strict=True):
        expected = reference(args, kwargs)
        if expected is None:
            assert isinstance(part, _core.Unsupported) and isinstance(size, _core.Unsupported)
            continue
        assert part == expected and size == len(expected[0])


def test_explicit_reprs_in_the_template_are_not_computed():
    template = {**TEMPLATE, "argsrepr": "A", "kwargsrepr": "K"}
    [(body, argsrepr, kwargsrepr)] = _core.amqp_alike_parts(template, [("i", 0, (1,), {})])
    assert json.loads(body)[0] == [1] and argsrepr is None and kwargsrepr is None


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(args=args_st, kwargs=kwargs_st, maxsize=st.sampled_from([None, 8, 1024]))
def test_task_reprs_are_celerys_saferepr(args, kwargs, maxsize):
    """The reprs a publish signal receiver sees in the headers
    (``publish/signalled.py``) are ``as_task_v2``'s."""
    from celery.utils.saferepr import saferepr

    limits = {"argsrepr_maxsize": maxsize, "kwargsrepr_maxsize": maxsize, "repr_maxlevels": 3}
    got = _core.task_reprs(args, kwargs, **limits)
    assert got == (
        saferepr(args or (), maxsize, maxlevels=3),
        saferepr(kwargs or {}, maxsize, maxlevels=3),
    )


def test_task_reprs_leave_unsupported_values_to_celery():
    assert isinstance(_core.task_reprs((object(),), {}), _core.Unsupported)

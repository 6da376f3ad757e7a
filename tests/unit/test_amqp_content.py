"""``amqp_content.writes_for_certain`` against py-amqp itself: whenever it
says a message's content header is written for certain, py-amqp writes
it; the values py-amqp cannot write are never passed as certain."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

import pytest
from amqp.basic_message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from turbogroup.publish.amqp_content import writes_for_certain


def _py_amqp_writes(args: tuple[Any, ...]) -> bool:
    body, priority, content_type, content_encoding, headers, properties = args
    message = Message(
        body,
        priority=priority,
        content_type=content_type,
        content_encoding=content_encoding,
        application_headers=headers,
        **properties,
    )
    try:
        message._serialize_properties()
    except Exception:
        return False
    return True


def _args(headers: Any, properties: dict[str, Any] | None = None, priority: Any = 0) -> tuple:
    return ("{}", priority, "application/json", "utf-8", headers, properties or {})


STANDARD = {
    "lang": "py", "task": "t.add", "id": "6b1e0a52-3c1f-4f0e-9d7e-6a1f1b2c3d4e",
    "shadow": None, "eta": None, "expires": None, "group": None, "group_index": 3,
    "retries": 0, "timelimit": [None, 30.5], "root_id": "r", "parent_id": None,
    "argsrepr": "(1, 2)", "kwargsrepr": "{}", "origin": "gen1@host", "ignore_result": False,
    "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {},
}  # fmt: skip


def test_celerys_message_is_certain_and_written():
    args = _args(dict(STANDARD), {"correlation_id": STANDARD["id"], "reply_to": "r"})
    assert writes_for_certain(args)
    assert _py_amqp_writes(args)


@pytest.mark.parametrize(
    "headers, properties, priority",
    [
        ({"span": object()}, {}, 0),  # no AMQP type
        ({"k" * 256: "v"}, {}, 0),  # a key over a short string
        ({"big": 2**64}, {}, 0),  # over a long long
        ({"nested": [1, {"x": object()}]}, {}, 0),
        ({}, {"correlation_id": "x" * 300}, 0),  # over a short string
        ({}, {"correlation_id": "é" * 200}, 0),  # 400 bytes in 200 characters
        ({}, {"delivery_mode": 300}, 0),  # over an octet
        ({}, {}, 256),
        ({}, {"timestamp": -1}, 0),
    ],
)
def test_what_py_amqp_cannot_write_is_never_certain(headers, properties, priority):
    args = _args(headers, properties, priority)
    assert not _py_amqp_writes(args)  # the case is a real failure
    assert not writes_for_certain(args)


@pytest.mark.parametrize(
    "value, certain",
    [
        (2**63 - 1, True),
        (-(2**63), True),
        (True, True),
        ([1, 2.5, "x", None, {"k": b"v"}], True),
        # written by py-amqp, but left to it: the check serializes them
        (decimal.Decimal("1.5"), False),
        (datetime.datetime(2026, 12, 5), False),
    ],
)
def test_what_py_amqp_writes_is_certain_or_left_to_it(value, certain):
    args = _args({"v": value})
    assert _py_amqp_writes(args)
    assert writes_for_certain(args) is certain


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.binary(max_size=80),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.builds(object),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=70), inner, max_size=4),
    ),
    max_leaves=12,
)
keys = st.one_of(st.text(max_size=90), st.integers(), st.binary(max_size=10))
short_str_props = st.sampled_from(
    [k for k, kind in Message.PROPERTIES if kind == "s" and not k.startswith("content_")]
)


@settings(max_examples=400, deadline=None)
@given(
    headers=st.one_of(st.none(), st.dictionaries(keys, values, max_size=6)),
    properties=st.dictionaries(
        st.one_of(short_str_props, st.sampled_from(["delivery_mode", "timestamp", "other"])),
        st.one_of(st.none(), st.text(max_size=90), st.integers(-5, 2**65), st.builds(object)),
        max_size=4,
    ),
    priority=st.one_of(st.none(), st.integers(-3, 300)),
)
def test_certain_means_py_amqp_writes_it(headers, properties, priority):
    args = _args(headers, properties, priority)
    if writes_for_certain(args):
        assert _py_amqp_writes(args)

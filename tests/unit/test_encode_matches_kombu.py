"""The Rust encoder against the Python it replaces, value by value.

For arbitrary args/kwargs, the message body must be the bytes
``kombu.utils.json.dumps`` writes and ``argsrepr``/``kwargsrepr`` must be
what ``celery.utils.saferepr.saferepr`` returns; whenever either of those
raises, or a value's type is not one the port renders exactly, the encoder
must answer ``Unsupported`` so the caller falls back to Celery. No broker
is needed here; tests/integration/test_encode_matches_celery.py checks whole
published messages.
"""

import base64
import collections
import datetime
import decimal
import enum
import json
import math
import struct
import sys
import uuid
import zoneinfo

import hypothesis.strategies as st
import pytest
from celery.utils.saferepr import saferepr
from hypothesis import HealthCheck, example, given, settings
from kombu.utils.json import dumps

from turbogroup import _core

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

# Every code point, lone surrogates included: Python strings may hold them
# and Celery passes them through.
any_text = st.text(st.characters(exclude_categories=()))
timezones = (
    st.none()
    | st.just(datetime.timezone.utc)
    | st.timezones()
    | st.builds(
        datetime.timezone,
        st.timedeltas(
            min_value=-datetime.timedelta(hours=23), max_value=datetime.timedelta(hours=23)
        ),
    )
)
# Arbitrary bit patterns reach subnormals and long digit strings that
# st.floats() rarely produces.
raw_doubles = st.builds(lambda b: struct.unpack("<d", b)[0], st.binary(min_size=8, max_size=8))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 5, max_value=2**63 + 5)
    | st.integers(min_value=-(2**63) - 5, max_value=-(2**63) + 5)
    | st.integers(min_value=-(10**80), max_value=10**80)
    | st.floats()
    | raw_doubles
    | any_text
    | st.text(" ab'\\\t\n\x00é😀", max_size=40)
    | st.binary()
    | st.builds(lambda s: s.encode(), any_text.filter(lambda s: s.isprintable() or not s))
    | st.datetimes(timezones=timezones)
    | st.dates()
    | st.times(timezones=st.none() | st.just(datetime.timezone.utc))
    | st.decimals()
    | st.uuids()
)
json_keys = st.none() | st.booleans() | st.integers() | st.floats() | any_text
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=6).map(tuple)
        | st.dictionaries(json_keys, inner, max_size=6)
    ),
    max_leaves=40,
)
long_values = st.one_of(
    st.text("ab c'\t", min_size=900, max_size=2500),
    st.lists(st.integers(), min_size=150, max_size=400),
    st.binary(min_size=900, max_size=2500),
    st.lists(st.text("xy z", min_size=5, max_size=40), min_size=20, max_size=80),
    st.dictionaries(
        st.text("kq", min_size=1, max_size=12),
        st.text("v w", max_size=30),
        min_size=30,
        max_size=80,
    ),
)
args_st = st.lists(values | long_values, max_size=5).map(tuple) | st.lists(values, max_size=3)
kwargs_st = st.dictionaries(any_text, values | long_values, max_size=5)


def encode(args, kwargs, **fields):
    [out] = _core.encode_task_messages(
        [{"task_id": "id", "name": "t", "args": args, "kwargs": kwargs, **fields}]
    )
    return out


def reference(args, kwargs):
    """What Celery 5.7.0 would put in the message, or None if it raises."""
    try:
        body = dumps((args or (), kwargs or {}, EMBED)).encode()
        argsrepr = saferepr(args or (), 1024, maxlevels=3)
        kwargsrepr = saferepr(kwargs or {}, 1024, maxlevels=3)
    except (TypeError, ValueError):
        return None
    return body, argsrepr, kwargsrepr


def decoded(envelope):
    env = json.loads(envelope)
    return base64.b64decode(env["body"]), env["headers"]["argsrepr"], env["headers"]["kwargsrepr"]


def assert_matches(args, kwargs):
    out = encode(args, kwargs)
    expected = reference(args, kwargs)
    if expected is None:
        assert isinstance(out, _core.Unsupported), out
        return
    assert isinstance(out, bytes), out
    body, argsrepr, kwargsrepr = decoded(out)
    assert body == expected[0]
    assert argsrepr == expected[1]
    assert kwargsrepr == expected[2]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args_st, kwargs_st)
@example((1e16, 1e-05, 1.5e300, 100.0, 1e22, 0.1, -0.0, math.nan, math.inf), {})
@example(("\ud800", "a\udfffb", "\t\n\x00\\", "it's"), {"\U0001f600": "\x7f"})
@example((b"\xff\xfe", "é".encode(), b""), {})
@example(([[[[1]]]], {"a": {"b": {"c": {}}}}, ((1,),), (1,), ()), {})
@example(({1: "a", 2.5: "b", None: "c", False: "d", math.nan: "e"},), {})
@example(("x" * 2000,), {"k": list(range(1000))})
@example((10**30, -(10**40)), {"big": 2**64})
@example(([datetime.datetime(2020, 1, 1, 0, 0, 1)] * 60, [decimal.Decimal("1.5")] * 99), {})
@example(({"k" * 2000: 1},), {"a b " * 300: ("x", "y " * 600)})
@example(([None, True] * 200, (1,) * 300), {"d": {i: None for i in range(200)}})
def test_body_and_reprs_match_kombu_and_saferepr(args, kwargs):
    assert_matches(args, kwargs)


# Doubles in [2**40, 2**53) with few fractional bits often lie exactly
# halfway between two 16-digit candidates (562949953421312.25), where
# Python keeps the even digit.
halfway_doubles = st.builds(
    lambda m, q: math.ldexp(m, -q), st.integers(2**52, 2**53 - 1), st.integers(0, 12)
)


@settings(max_examples=3000, deadline=None)
@given(st.floats() | raw_doubles | halfway_doubles)
@example(562949953421312.25)
@example(562949953421312.75)
def test_floats_are_written_as_python_repr(x):
    assert_matches((x,), {repr(x): x})


@pytest.mark.parametrize(
    "value",
    [
        datetime.datetime(2024, 2, 29, 13, 14, 15, 16, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
        datetime.datetime(
            2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
        ),
        datetime.datetime(2024, 1, 1),
        datetime.date(2024, 1, 1),
        datetime.time(1, 2, 3, 4),
        datetime.time(1, 2, tzinfo=datetime.timezone.utc),
        decimal.Decimal("1.10"),
        decimal.Decimal("-0E-7"),
        decimal.Decimal("sNaN"),
        uuid.UUID(int=12345),
    ],
)
def test_kombu_tagged_types_match(value):
    assert_matches((value, [value]), {"v": value})


class Color(enum.IntEnum):
    RED = 1


if sys.version_info >= (3, 11):

    class Speed(enum.StrEnum):
        FAST = "fast"

else:  # no StrEnum: the spelling Python 3.10 has

    class Speed(str, enum.Enum):
        FAST = "fast"


Point = collections.namedtuple("Point", "x y")


class MyDict(dict):
    pass


class MyDatetime(datetime.datetime):
    pass


@pytest.mark.parametrize(
    "value",
    [
        object(),
        {1, 2},
        frozenset(),
        Color.RED,
        Speed.FAST,
        Point(1, 2),
        MyDict(a=1),
        MyDatetime(2020, 1, 1),
        bytearray(b"x"),
        1j,
        range(3),
    ],
    ids=repr,
)
def test_values_whose_repr_is_not_ported_are_left_to_celery(value):
    assert isinstance(encode((value,), {}), _core.Unsupported)
    assert isinstance(encode((), {"k": [value]}), _core.Unsupported)


def test_values_celery_cannot_encode_are_left_to_celery():
    recursive = []
    recursive.append(recursive)
    for args, kwargs in [((recursive,), {}), ((), {(1, 2): "tuple key"}), ((10**5000,), {})]:
        assert isinstance(encode(args, kwargs), _core.Unsupported)


def test_falsy_args_and_kwargs_become_empty_like_as_task_v2():
    # `args = args or ()`: an empty list is shown as "()", not "[]".
    for args in (None, [], ()):
        _, argsrepr, kwargsrepr = decoded(encode(args, None))
        assert (argsrepr, kwargsrepr) == ("()", "{}")
    assert decoded(encode([1], {}))[1] == "[1]"


def test_signatures_in_callbacks_are_encoded_through_their_items():
    from celery import Celery

    app = Celery("tg-encode-unit", set_as_current=False)
    sig = app.signature("t.callback", args=(1,), kwargs={"k": b"\xff"}, immutable=True)
    out = encode((), {}, callbacks=[sig], chord=sig, errbacks=[dict(sig)])
    body = base64.b64decode(json.loads(out)["body"])
    expected = dumps(
        ((), {}, {"callbacks": [sig], "errbacks": [dict(sig)], "chain": None, "chord": sig})
    ).encode()
    assert body == expected


def test_a_signature_shared_by_many_messages_is_encoded_the_same_in_each():
    from celery import Celery

    app = Celery("tg-encode-unit", set_as_current=False)
    body = app.signature("t.body", args=({"n": 1},), options={"link": [app.signature("t.x")]})
    other = app.signature("t.other")
    messages = [
        {"task_id": str(i), "name": "t", "args": (i,), "chord": body if i % 2 else other}
        for i in range(6)
    ]
    for i, out in enumerate(_core.encode_task_messages(messages)):
        sig = body if i % 2 else other
        expected = dumps(((i,), {}, {**EMBED, "chord": sig})).encode()
        assert base64.b64decode(json.loads(out)["body"]) == expected


def test_explicit_reprs_are_kept_verbatim():
    out = json.loads(encode((1,), {}, argsrepr="<args>", kwargsrepr={"x": 1}))
    assert out["headers"]["argsrepr"] == "<args>"
    assert out["headers"]["kwargsrepr"] == {"x": 1}


def test_repr_limits_are_parameters():
    args = (["x" * 50] * 3, [[[[1]]]])
    [out] = _core.encode_task_messages(
        [{"task_id": "i", "name": "t", "args": args}],
        argsrepr_maxsize=40,
        repr_maxlevels=5,
    )
    assert decoded(out)[1] == saferepr(args, 40, maxlevels=5)
    [out] = _core.encode_task_messages(
        [{"task_id": "i", "name": "t", "args": args}],
        argsrepr_maxsize=None,
        repr_maxlevels=None,
    )
    assert decoded(out)[1] == saferepr(args, None, maxlevels=None)


def test_malformed_message_dicts_are_caller_errors():
    with pytest.raises(ValueError, match="unknown key"):
        _core.encode_task_messages([{"task_id": "i", "name": "t", "countdown": 1}])
    with pytest.raises(ValueError, match="'name' is required"):
        _core.encode_task_messages([{"task_id": "i"}])
    with pytest.raises(TypeError, match="'eta' must be a str or None"):
        _core.encode_task_messages(
            [{"task_id": "i", "name": "t", "eta": datetime.datetime(2020, 1, 1)}]
        )

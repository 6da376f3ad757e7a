"""``collect.decode.decode_json_batch`` gives exactly what kombu's
``json.loads`` gives, or hands the payload back to kombu."""

from __future__ import annotations

import json
import math

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from kombu.utils.json import loads as kombu_loads

from turbogroup.collect.decode import decode_json_batch


def same(a, b) -> bool:
    """Equal, with the same types all the way down (1 vs 1.0 vs True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def check(payloads: list[bytes | None]) -> None:
    values, needs_python = decode_json_batch(payloads)
    assert len(values) == len(payloads)
    for i, payload in enumerate(payloads):
        if payload is None:
            assert values[i] is None and i not in needs_python
        elif i not in needs_python:
            assert same(values[i], kombu_loads(payload)), payload
        else:
            assert values[i] is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.booleans(), st.sampled_from([None, 2]))
def test_any_json_document_decodes_as_json_loads_does(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    payload = text.encode("utf-8")
    values, needs_python = decode_json_batch([payload])
    # Plain JSON without kombu tags is never sent back to Python.
    assert needs_python == []
    assert same(values[0], json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"status": "SUCCESS", "result": 3, "traceback": null, "children": [],'
        ' "date_done": "2026-01-01T00:00:00+00:00", "task_id": "x"}',
        '{"b": 1, "a": 2, "b": 3}',
        ' \t\r\n[ 1 , {\n"a" :\t2 } ] \n',
        "[-0, -0.0, 0.1, 1e5, 1E-7, 1e400, -1e400, 9223372036854775807, -9223372036854775809]",
        "123456789012345678901234567890123456789",
        r'"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00z"',
        '"caf\u00e9 \u2603 \U0001f600"',
        "[" * 60 + "]" * 60,
        "[NaN, Infinity, -Infinity]",
        '{"result": NaN}',
        '{"__value__": 1}',
        '{"__type__x": 1}',
        # kombu's hook only rewrites objects whose keys are exactly these two
        '{"result": [{"__type__": 1, "other": 2}]}',
        '{"__type__": null}',
        "true",
        "null",
    ],
)
def test_edge_cases_decode_as_json_loads_does(text):
    check([text.encode("utf-8")])
    values, needs_python = decode_json_batch([text.encode("utf-8")])
    assert needs_python == []


@pytest.mark.parametrize(
    "payload",
    [
        b'{"result": {"__type__": "uuid", "__value__": "2f0b3a2c-8f0e-4d47-9c16-8a0a7f6c1f4e"}}',
        b'{"result": {"__type__": "bytes", "__value__": "YQ=="}}',
        # the tag spelled with escapes is still kombu's key
        b'{"result": {"\\u005f_type__": "uuid", "__value__": "x"}}',
        b'"\\ud800"',
        b'"\\udc00x"',
        b'"\\ud800\\u0041"',
        b"[" * 300 + b"]" * 300,
    ],
)
def test_what_only_python_reads_exactly_goes_back_to_python(payload):
    values, needs_python = decode_json_batch([payload])
    assert needs_python == [0] and values == [None]
    check([payload])


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b" ",
        b"{",
        b"[1,]",
        b"01",
        b"1.",
        b"1e",
        b"-",
        b"+1",
        b".5",
        b"[1] x",
        b"\xef\xbb\xbf[]",
        b'"a\tb"',
        b'"\\x"',
        b"nul",
        b"True",
        b'"\xff"',
        b"\xed\xa0\x80",
    ],
)
def test_what_json_rejects_goes_back_to_python_to_raise(payload):
    values, needs_python = decode_json_batch([payload])
    assert needs_python == [0]
    with pytest.raises(ValueError):  # JSONDecodeError, UnicodeDecodeError
        kombu_loads(payload)


def test_missing_payloads_stay_none_and_indexes_line_up():
    payloads = [None, b"1", b'"\\ud800"', None, b'{"a": [1.5]}']
    values, needs_python = decode_json_batch(payloads)
    assert values == [None, 1, None, None, {"a": [1.5]}]
    assert needs_python == [2]


def test_tagged_refused_and_foreign_payloads_go_back_in_order():
    """A tagged object, a payload the parser refuses and one that is not
    bytes (a client decoding replies to str) all go to kombu, their
    indexes in order whichever way each was found."""
    payloads = [
        b'{"d": {"__type__": "uuid", "__value__": "x"}}',
        b"nope",
        '{"s": 1}',
        b'{"k": "\\u0041"}',
        b'{"__type__": 1}',
    ]
    values, needs_python = decode_json_batch(payloads)
    assert needs_python == [0, 1, 2]
    assert values == [None, None, None, {"k": "A"}, {"__type__": 1}]

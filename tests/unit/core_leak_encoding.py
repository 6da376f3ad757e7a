"""The encoder's and decoder's scenarios of the ``_core`` leak check
(``test_core_leaks.py``)."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from tests.unit.core_leak_scenarios import BoomError, Scenario, raises


def encode_scenario() -> Scenario:
    from celery.canvas import Signature

    from turbogroup import _core

    class ItemsFail(dict):
        def items(self) -> Any:
            raise BoomError("items failed")

    sig = Signature("tg.callback", args=(1, "x"), kwargs={"k": [1.5, None]}, immutable=True)
    args = (
        1,
        2**80,
        -0.0,
        1e300,
        "é😀\x00",
        b"bytes",
        [1, (2, {"n": None})],
        datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
        datetime.date(2031, 5, 6),
        datetime.time(7, 8, 9),
        decimal.Decimal("1.10"),
        uuid.UUID(int=7),
    )
    kwargs = {"x": 1, "nested": {"list": list(range(50))}, "text": "y" * 2000}
    full = {
        "task_id": str(uuid.uuid4()),
        "name": "tg.add",
        "args": args,
        "kwargs": kwargs,
        "shadow": None,
        "eta": "2031-05-06T07:08:09.123456+00:00",
        "expires": None,
        "group_id": str(uuid.uuid4()),
        "group_index": 3,
        "retries": 0,
        "time_limit": None,
        "soft_time_limit": 10,
        "root_id": None,
        "parent_id": None,
        "argsrepr": None,
        "kwargsrepr": None,
        "origin": "gen1@host",
        "ignore_result": False,
        "replaced_task_nesting": 0,
        "stamped_headers": ["stamp"],
        "stamps": {"stamp": "value"},
        "headers": {"extra": [1, 2]},
        "callbacks": [sig],
        "errbacks": [sig],
        "chain": None,
        "chord": sig,
        "reply_to": "reply",
        "properties": {"custom": {"a": 1}},
        "delivery_mode": 2,
        "expiration": "1500",
        "priority": 3,
        "exchange": "",
        "routing_key": "celery",
    }
    minimal = {"task_id": "id", "name": "tg.add", "args": [1, 2]}
    unsupported = [
        {"task_id": "id", "name": "tg.add", "args": (object(),)},
        {"task_id": "id", "name": "tg.add", "args": ({1, 2},)},
        {"task_id": "id", "name": "tg.add", "kwargs": {(1, 2): "tuple key"}},
        {"task_id": "id", "name": "tg.add", "chord": ItemsFail(a=1)},
    ]
    messages = [full, minimal, *unsupported, full, minimal]
    circular: list[Any] = []
    circular.append(circular)
    caller_errors = [
        ([{"task_id": "id"}], ValueError),  # no name
        ([{"task_id": "id", "name": "t", "countdown": 1}], ValueError),  # unknown key
        ([{"task_id": "id", "name": "t", "eta": datetime.datetime(2031, 1, 1)}], TypeError),
        ([{"task_id": "id", "name": 1}], TypeError),
        (["not a dict"], TypeError),
        (None, TypeError),
    ]

    def step() -> None:
        out = _core.encode_task_messages(messages)
        assert [type(x) is bytes for x in out] == [True, True, False, False, False, False] + [
            True,
            True,
        ]
        assert all(x.reason for x in out[2:6]) and repr(out[2]).startswith("Unsupported(")
        [short] = _core.encode_task_messages(
            [full], argsrepr_maxsize=40, kwargsrepr_maxsize=None, repr_maxlevels=None
        )
        assert type(short) is bytes
        [loop] = _core.encode_task_messages([{"task_id": "id", "name": "t", "args": circular}])
        assert type(loop) is _core.Unsupported
        [int_id] = _core.encode_task_messages([{"task_id": 1, "name": "t"}])
        assert type(int_id) is _core.Unsupported  # Celery's to publish
        for bad, exc in caller_errors:
            raises(exc, _core.encode_task_messages, bad)

    return Scenario(
        "encode_task_messages",
        step,
        [sig, args, *args[1:], kwargs, full, minimal, *unsupported, circular],
    )


def alike_encode_scenario() -> Scenario:
    """The template encoders, with items that carry a chain and clock
    fields (the shared envelope's holes), an unsupported item, and items
    the binding rejects."""
    from turbogroup import _core

    template = {
        "task_id": "t0",
        "name": "tg.add",
        "args": (0,),
        "kwargs": {},
        "eta": "2031-05-06T07:08:09+00:00",
        "expires": "2031-05-07T00:00:00+00:00",
        "expiration": "60000",
        "chain": [{"task": "tg.next"}],
    }
    chain = [{"task": "tg.next", "options": {"task_id": "n1"}}]
    clock = ("2031-05-06T07:08:10+00:00", None, "59000")
    items = [
        ("id-1", 1, (1, "x" * 100), {"k": [1.5]}),
        ("id-2", 2, [2], {}, chain),
        ("id-3", 3, (3,), {"k": None}, None, clock),
        ("id-4", 4, (object(),), {}, chain, clock),  # unsupported
        ("id-5", None, (5,), {}, None, None),
    ]
    rejected = [
        [("id", 0, (), {}, None, ("eta", None))],  # a clock of 2
        [("id", 0, (), {}, None, (1, None, None))],  # not a str
        [("id", 0, ())],  # too short
    ]

    def step() -> None:
        out = _core.encode_alike_messages(template, items)
        assert [type(x) is bytes for x in out] == [True, True, True, False, True]
        checked = _core.encode_alike_messages(template, items, check=True)
        assert [x is None for x in checked] == [True, True, True, False, True]
        good = [item for i, item in enumerate(items) if i != 3]
        command = _core.lpush_alike_command("q", template, good)
        assert command.startswith(b"*6\r\n$5\r\nLPUSH")
        parts = _core.amqp_alike_parts(template, good)
        assert all(type(p) is tuple for p in parts)
        for bad in rejected:
            raises(TypeError, _core.encode_alike_messages, template, bad)
        # headers of their own: appended, replacing, unsupported, too few
        out = _core.encode_alike_messages(template, good, headers=headers)
        assert [type(x) is bytes for x in out] == [True, True, False, True]
        command = _core.lpush_alike_command("q", template, good[:2], headers=headers[:2])
        assert command.startswith(b"*4\r\n$5\r\nLPUSH")
        raises(TypeError, _core.encode_alike_messages, template, good, headers=headers[:1])

    headers = [{"traceparent": "00-1"}, {"task": "renamed", "x": [1]}, {1: "int key"}, None]
    # (None's own count moves with anything CPython caches: not watched)
    kept = [template, chain, clock, *items, *rejected, *headers[:3]]
    return Scenario("alike encoders", step, kept)


def decode_scenario() -> Scenario:
    from turbogroup import _core

    payloads = [
        b'{"status": "SUCCESS", "result": [1, 2.5, "x", null], "children": []}',
        None,
        b'{"d": {"__type__": "uuid", "__value__": "x"}}',
        b'{"broken": ',
        '{"str": 1}',
        b'"\\ud800"',
        b"123456789012345678901234567890",
    ]

    def step() -> None:
        values, suspects, refused = _core.decode_json_payloads(payloads)
        assert values[0]["result"] == [1, 2.5, "x", None] and values[1] is None
        assert suspects == [2] and refused == [3, 4, 5]
        raises(TypeError, _core.decode_json_payloads, None)

    return Scenario(
        "decode_json_payloads", step, [payloads, *(p for p in payloads if p is not None)]
    )

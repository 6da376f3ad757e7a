"""Leak check of the pyo3 binding, ``turbogroup._core``.

Every function and class of the binding is called many thousands of times in
a fresh interpreter, on its success paths and its error paths (exceptions
raised in Rust, and Python exceptions passing through Rust), and what is
still allocated afterwards must be what was allocated before. A reference
the binding forgets to release shows up as live Python objects (or, for an
object the test keeps passing in, as a higher ``sys.getrefcount``); memory
Rust forgets to free shows up in malloc's in-use bytes.

Run ``python -m tests.unit.test_core_leaks`` to see the figures.
"""

from __future__ import annotations

import datetime
import decimal
import gc
import json
import sys
import uuid
import weakref
from collections.abc import Callable
from typing import Any

from tests.memprobe import MIB, growth, run_child, snapshot

WARMUP = 500
# Iterations per measured loop. One leaked object per iteration would leave
# ITERATIONS live blocks; one leaked malloc chunk (32 bytes at least) would
# leave 32 * ITERATIONS bytes.
ITERATIONS = 10_000
# What may stay behind without being a leak: free lists, interned strings,
# a list or dict that grew once. Measured: 8-300 blocks (Barrier the most,
# its promises' free lists) and at most ~7 KiB of malloc per scenario.
MAX_BLOCKS = ITERATIONS // 20
MAX_MALLOC = 4 * ITERATIONS  # bytes: an eighth of a 32-byte chunk per call
# RSS only catches a big leak (a few pages would already be allocator
# noise), but it is what a user sees; measured 0-350 KiB per scenario.
MAX_RSS = 2 * MIB


class BoomError(Exception):
    pass


class Scenario:
    """One iteration of calls into ``_core``, and the long-lived objects it
    passes in on every iteration (whose reference counts must not move)."""

    def __init__(self, name: str, step: Callable[[], None], watched: list[Any]) -> None:
        self.name = name
        self.step = step
        self.watched = watched


def _raises(exc: type[BaseException], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"{fn!r} did not raise {exc.__name__}")


def _throw(throw: Callable[[BaseException], Any], exc: BaseException) -> None:
    try:
        throw(exc)
    except type(exc) as caught:
        # vine's promise keeps the exception (p.reason), whose traceback
        # holds this frame, which holds the barrier: a cycle, left to the
        # collector's schedule (see the cycle test at the end). Cut here so
        # that this loop measures the binding alone.
        caught.__traceback__ = None
    else:
        raise AssertionError(f"{throw!r} did not raise")


def _ids_scenario() -> Scenario:
    from turbogroup import _core

    def step() -> None:
        assert len(_core.uuid4()) == 36
        assert len(_core.uuid4_batch(64)) == 64
        assert _core.uuid4_batch(0) == []

    return Scenario("ids", step, [])


def _big_id_batch_scenario() -> Scenario:
    from turbogroup import _core

    def step() -> None:
        # 4096 and more are generated with the GIL released.
        assert len(_core.uuid4_batch(5000)) == 5000

    return Scenario("ids, batch of 5000 (GIL released)", step, [])


def _unroll_scenario() -> Scenario:
    from turbogroup import _core

    leaf = _core.LEAF
    shape = [leaf, 2, leaf, leaf, leaf] * 40 + [3, 1, leaf, 0, leaf]
    truncated = [3, leaf]
    bad_code = [leaf, -7]

    def step() -> None:
        assert len(_core.freeze_unroll_order(shape)) == 162
        _raises(ValueError, _core.freeze_unroll_order, truncated)
        _raises(ValueError, _core.freeze_unroll_order, bad_code)
        _raises(TypeError, _core.freeze_unroll_order, ["x"])

    return Scenario("unroll plan", step, [shape, truncated, bad_code])


def _barrier_scenario() -> Scenario:
    from vine import promise

    from turbogroup._core import Barrier
    from turbogroup.barrier import barrier

    fired: list[Any] = []

    def callback(*args: Any, **kwargs: Any) -> None:
        fired.append((args, kwargs))

    def failing(*args: Any, **kwargs: Any) -> None:
        raise BoomError("callback failed")

    call_args = ("a", 1, object())
    call_kwargs = {"k": object()}
    reason = BoomError("reason")

    def step() -> None:
        # Fulfilled by its members, firing a Python callback with args.
        members = [promise() for _ in range(4)]
        b = barrier(members, args=call_args, kwargs=call_kwargs, callback=callback)
        for member in members:
            member()
        assert b.ready and fired.pop() == (call_args[:], call_kwargs)
        _raises(ValueError, b.add, promise())  # full
        b.args, b.kwargs, b.reason = call_args, call_kwargs, reason
        assert b.args == call_args and b.kwargs == call_kwargs and b.reason is reason
        b.reason = None
        assert repr(b) == "<Barrier 4/4 ready>"

        # A callback that raises: the exception comes out of the last arrival.
        members = [promise(), promise()]
        b = barrier(members, callback=failing)
        members[0]()
        _raises(BoomError, members[1])

        # The raw class: counted by hand, finalized late, then/throw/cancel.
        raw = Barrier(args=call_args, kwargs=call_kwargs, size=2)
        raw.then(callback, callback)
        raw()
        raw(1, x=2)
        raw.finalize()
        assert fired.pop() == (call_args[:], call_kwargs)
        thrower = Barrier()
        thrower.then(callback, callback)
        _throw(thrower.throw, BoomError("thrown"))  # the errback gets it, then it propagates
        assert isinstance(fired.pop()[0][0], BoomError)
        unhandled = Barrier()
        unhandled.then(callback)
        _throw(unhandled.throw1, BoomError("unhandled"))
        cancelled = barrier([promise(), promise()], callback=callback)
        cancelled.cancel()
        cancelled.add(promise())  # ignored once cancelled
        assert cancelled.cancelled and not fired
        grown = Barrier()
        grown.add_noincr(promise())
        grown.add(promise())
        grown.size, grown._value = 5, 1
        assert (grown.size, grown._value) == (5, 1)
        _raises(AttributeError, Barrier, promises=object())  # vine calls __len__ too
        _raises(TypeError, Barrier, kwargs=[1])

    # Only objects of our own: the refcount of a shared one ("a", 1) moves
    # with everything else the interpreter does.
    return Scenario(
        "Barrier", step, [callback, failing, call_args, call_args[2], call_kwargs, reason]
    )


def _encode_scenario() -> Scenario:
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
            _raises(exc, _core.encode_task_messages, bad)

    return Scenario(
        "encode_task_messages",
        step,
        [sig, args, *args[1:], kwargs, full, minimal, *unsupported, circular],
    )


def _alike_encode_scenario() -> Scenario:
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
            _raises(TypeError, _core.encode_alike_messages, template, bad)

    return Scenario("alike encoders", step, [template, chain, clock, *items, *rejected])


def _decode_scenario() -> Scenario:
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
        _raises(TypeError, _core.decode_json_payloads, None)

    return Scenario(
        "decode_json_payloads", step, [payloads, *(p for p in payloads if p is not None)]
    )


def _stand_ins_scenario() -> Scenario:
    from types import SimpleNamespace

    from turbogroup import _core

    not_fetched = object()
    exception_states = frozenset({"FAILURE", "RETRY", "REVOKED"})
    done = {"status": "SUCCESS", "result": 1, "children": []}
    kinds = [
        done,
        None,
        {"status": "FAILURE", "result": None},
        {"status": "STARTED", "result": None},
        {"status": "SUCCESS", "result": 2, "children": [["x", None]]},
        not_fetched,
        [1, 2],
        {"result": 3},
    ]
    cached = {"status": "SUCCESS", "result": 0}

    def step() -> None:
        nodes = [SimpleNamespace(_cache=None) for _ in kinds] + [SimpleNamespace(_cache=cached)]
        out, later, newly = _core.settle_stand_ins(
            nodes, [*kinds, done], exception_states, not_fetched
        )
        assert out[0] is done and nodes[0]._cache is done and newly == 1
        assert out[1] == {"status": "PENDING", "result": None} and out[3] is kinds[3]
        assert later == [2, 4, 5, 6, 7] and out[8] is cached
        assert nodes[3]._cache is None
        _raises(TypeError, _core.settle_stand_ins, None, [], exception_states, not_fetched)

    ids = ["a", "\u00e9", "b" * 40]

    def mget() -> None:
        assert (
            _core.mget_commands("p:", ids, 2)[1]
            == b"*2\r\n$4\r\nMGET\r\n$42\r\np:" + b"b" * 40 + b"\r\n"
        )
        _raises(TypeError, _core.mget_commands, "p:", ["a", 3], 10)
        _raises(ValueError, _core.mget_commands, "p:", ids, 0)

    def both() -> None:
        step()
        mget()

    tracked = [k for k in kinds if k is not None]
    return Scenario(
        "settle_stand_ins, mget_commands",
        both,
        [*tracked, cached, exception_states, not_fetched, *ids],
    )


def _alike_queue_scenario() -> Scenario:
    import itertools

    from celery import Celery
    from celery.canvas import Signature

    from turbogroup import _core
    from turbogroup.plain_kinds import NO_KWARGS, AlikeRun
    from turbogroup.publish.alike import AlikeChild

    app = Celery("turbogroup-leaks", set_as_current=False)
    queue = _core.AlikeQueue(Signature, AlikeChild, tuple.__new__, NO_KWARGS)
    options = {"priority": 3}
    tasks = [
        Signature("tg.add", args=(i, i), options={**options, "task_id": f"id-{i}"}, app=app)
        for i in range(8)
    ]
    tasks += [
        Signature("tg.add", args=[1], kwargs={"y": 2}, options={**options, "task_id": ""}, app=app),
        Signature("other", app=app),
    ]
    template = {"template": True}
    counter = itertools.count()

    def typed(*args: Any, **kwargs: Any) -> None:
        if args == (3, 3):
            raise TypeError("bad arguments")

    def fallback(*args: Any) -> None:
        pass

    def step() -> None:
        pending: list[Any] = []
        ids = _core.TaskIds()
        run = AlikeRun(
            "tg.add",
            False,
            None,
            app,
            (("priority", 1, 3), ("task_id", 0, None)),
            "q",
            template,
            typed,
            (),
            {},
            pending,
            counter.__next__,
            fallback,
            False,
        )
        assert queue.run(tasks, 0, 10, run, ids) == 3  # the typing check raised
        assert queue.run(tasks, 4, 10, run, ids) == 9  # another task
        assert len(pending) == len(ids) == 8
        _raises(AttributeError, queue.run, tasks, 0, 10, None, ids)  # not a run

    return Scenario("AlikeQueue.run", step, [queue, app, template, typed, fallback, *tasks])


SCENARIOS = (
    _ids_scenario,
    _big_id_batch_scenario,
    _unroll_scenario,
    _barrier_scenario,
    _encode_scenario,
    _alike_encode_scenario,
    _decode_scenario,
    _stand_ins_scenario,
    _alike_queue_scenario,
)


def _refcounts(objects: list[Any]) -> list[int]:
    return [sys.getrefcount(obj) for obj in objects]


def measure(scenario: Scenario, warmup: int, iterations: int) -> dict[str, Any]:
    step = scenario.step
    for _ in range(warmup):
        step()
    before = snapshot()
    # After the collection: the last iteration's garbage may still hold some.
    refcounts = _refcounts(scenario.watched)
    for _ in range(iterations):
        step()
    after = snapshot()
    moved = [
        (repr(obj)[:60], old, new)
        for obj, old, new in zip(scenario.watched, refcounts, _refcounts(scenario.watched))
        if new != old
    ]
    return {
        "name": scenario.name,
        "iterations": iterations,
        "growth": growth(before, after),
        "refcounts_moved": moved,
    }


def main(config: dict[str, Any]) -> None:
    figures = []
    for make in SCENARIOS:
        scenario = make()
        iterations = config["iterations"]
        if "5000" in scenario.name:
            iterations //= 10  # each call is 5000 ids
        figures.append(measure(scenario, config["warmup"], iterations))
    print(json.dumps({"scenarios": figures}))


def test_core_functions_do_not_leak():
    figures = run_child(
        "tests.unit.test_core_leaks",
        {"warmup": WARMUP, "iterations": ITERATIONS},
        timeout=240,
    )["scenarios"]
    print("\n_core leak check: growth over the measured loop (after warm-up)")
    for fig in figures:
        g = fig["growth"]
        malloc = "n/a" if g["malloc"] is None else f"{g['malloc']:+,} B"
        print(
            f"  {fig['name']:<38} x{fig['iterations']:>6}: blocks {g['blocks']:+,}, "
            f"gc objects {g['objects']:+,}, malloc in use {malloc}, "
            f"RSS {g['rss'] / 1024:+,.0f} KiB"
        )
    for fig in figures:
        g = fig["growth"]
        assert fig["refcounts_moved"] == [], fig
        assert g["blocks"] <= MAX_BLOCKS, fig
        assert g["objects"] <= MAX_BLOCKS, fig
        if g["malloc"] is not None:
            assert g["malloc"] <= MAX_MALLOC, fig
        assert g["rss"] <= MAX_RSS, fig


def _cycle_through(cls: type) -> weakref.ref:
    """A barrier whose callback refers back to it (an object holding a
    barrier and registering its own method is the everyday case); returns
    a weak reference to an object only that cycle keeps alive."""

    class Owner:
        def on_ready(self, *args: Any) -> None:
            pass

    owner = Owner()
    owner.barrier = cls()
    owner.barrier.then(owner.on_ready)
    return weakref.ref(owner)


def test_vine_barrier_cycles_are_collected():
    from vine import barrier

    ref = _cycle_through(barrier)
    gc.collect()
    assert ref() is None


def test_turbogroup_barrier_cycles_are_collected():
    from turbogroup.barrier import barrier

    ref = _cycle_through(barrier)
    gc.collect()
    assert ref() is None


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"warmup": 500, "iterations": 10_000})

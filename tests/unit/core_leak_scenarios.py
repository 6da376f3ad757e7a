"""What every scenario of the ``_core`` leak check (``test_core_leaks.py``)
shares, and the scenarios of the binding's calls other than the encoder's
and the decoder's (``core_leak_encoding.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class BoomError(Exception):
    pass


class Scenario:
    """One iteration of calls into ``_core``, and the long-lived objects it
    passes in on every iteration (whose reference counts must not move)."""

    def __init__(self, name: str, step: Callable[[], None], watched: list[Any]) -> None:
        self.name = name
        self.step = step
        self.watched = watched


def raises(exc: type[BaseException], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"{fn!r} did not raise {exc.__name__}")


def throw(throw: Callable[[BaseException], Any], exc: BaseException) -> None:
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


def ids_scenario() -> Scenario:
    from turbogroup import _core

    def step() -> None:
        assert len(_core.uuid4()) == 36
        assert len(_core.uuid4_batch(64)) == 64
        assert _core.uuid4_batch(0) == []

    return Scenario("ids", step, [])


def big_id_batch_scenario() -> Scenario:
    from turbogroup import _core

    def step() -> None:
        # 4096 and more are generated with the GIL released.
        assert len(_core.uuid4_batch(5000)) == 5000

    return Scenario("ids, batch of 5000 (GIL released)", step, [])


def unroll_scenario() -> Scenario:
    from turbogroup import _core

    leaf = _core.LEAF
    shape = [leaf, 2, leaf, leaf, leaf] * 40 + [3, 1, leaf, 0, leaf]
    truncated = [3, leaf]
    bad_code = [leaf, -7]

    def step() -> None:
        assert len(_core.freeze_unroll_order(shape)) == 162
        raises(ValueError, _core.freeze_unroll_order, truncated)
        raises(ValueError, _core.freeze_unroll_order, bad_code)
        raises(TypeError, _core.freeze_unroll_order, ["x"])

    return Scenario("unroll plan", step, [shape, truncated, bad_code])


def barrier_scenario() -> Scenario:
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
        raises(ValueError, b.add, promise())  # full
        b.args, b.kwargs, b.reason = call_args, call_kwargs, reason
        assert b.args == call_args and b.kwargs == call_kwargs and b.reason is reason
        b.reason = None
        assert repr(b) == "<Barrier 4/4 ready>"

        # A callback that raises: the exception comes out of the last arrival.
        members = [promise(), promise()]
        b = barrier(members, callback=failing)
        members[0]()
        raises(BoomError, members[1])

        # The raw class: counted by hand, finalized late, then/throw/cancel.
        raw = Barrier(args=call_args, kwargs=call_kwargs, size=2)
        raw.then(callback, callback)
        raw()
        raw(1, x=2)
        raw.finalize()
        assert fired.pop() == (call_args[:], call_kwargs)
        thrower = Barrier()
        thrower.then(callback, callback)
        throw(thrower.throw, BoomError("thrown"))  # the errback gets it, then it propagates
        assert isinstance(fired.pop()[0][0], BoomError)
        unhandled = Barrier()
        unhandled.then(callback)
        throw(unhandled.throw1, BoomError("unhandled"))
        cancelled = barrier([promise(), promise()], callback=callback)
        cancelled.cancel()
        cancelled.add(promise())  # ignored once cancelled
        assert cancelled.cancelled and not fired
        grown = Barrier()
        grown.add_noincr(promise())
        grown.add(promise())
        grown.size, grown._value = 5, 1
        assert (grown.size, grown._value) == (5, 1)
        raises(AttributeError, Barrier, promises=object())  # vine calls __len__ too
        raises(TypeError, Barrier, kwargs=[1])

    # Only objects of our own: the refcount of a shared one ("a", 1) moves
    # with everything else the interpreter does.
    return Scenario(
        "Barrier", step, [callback, failing, call_args, call_args[2], call_kwargs, reason]
    )


def stand_ins_scenario() -> Scenario:
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
        raises(TypeError, _core.settle_stand_ins, None, [], exception_states, not_fetched)

    ids = ["a", "\u00e9", "b" * 40]

    def mget() -> None:
        assert (
            _core.mget_commands("p:", ids, 2)[1]
            == b"*2\r\n$4\r\nMGET\r\n$42\r\np:" + b"b" * 40 + b"\r\n"
        )
        raises(TypeError, _core.mget_commands, "p:", ["a", 3], 10)
        raises(ValueError, _core.mget_commands, "p:", ids, 0)

    plain = b'{"status": "SUCCESS", "result": 1, "children": null}'
    payloads = [plain, None, b'{"status": "FAILURE"}', b"{not json", "str", plain]

    def kept() -> None:
        undecided = _core.undecided_payloads(payloads)
        assert undecided == [2, 3, 4]
        nodes = [SimpleNamespace(_meta=None, _raw=None) for _ in payloads]
        nodes[5]._meta = cached  # settled meanwhile
        statuses, count = _core.keep_plain_successes(nodes, payloads, undecided)
        assert statuses == ["SUCCESS", "PENDING", None, None, None, "SUCCESS"] and count == 1
        assert nodes[0]._raw is plain and nodes[5]._raw is None
        raises(AttributeError, _core.keep_plain_successes, [object()], [plain], [])
        raises(TypeError, _core.undecided_payloads, None)

    def all_of_them() -> None:
        step()
        mget()
        kept()

    tracked = [k for k in kinds if k is not None]
    return Scenario(
        "stand-ins, mget_commands",
        all_of_them,
        [*tracked, cached, exception_states, not_fetched, *ids, plain],
    )


def alike_queue_scenario() -> Scenario:
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
        raises(AttributeError, queue.run, tasks, 0, 10, None, ids)  # not a run

    return Scenario("AlikeQueue.run", step, [queue, app, template, typed, fallback, *tasks])

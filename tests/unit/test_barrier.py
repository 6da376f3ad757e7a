"""turbogroup.barrier against vine.barrier, and under threads."""

from __future__ import annotations

import threading
import weakref

import pytest
from vine import barrier as vine_barrier
from vine import promise
from vine.abstract import Thenable

from turbogroup import barrier


def run_script(cls, script):
    fired = []
    b = cls(size=2) if "sized" in script else cls()
    b.then(lambda *a: fired.append(a))
    trace = []
    for step in script:
        if step == "add":
            b.add(promise())
        elif step == "call":
            b()
        elif step == "finalize":
            b.finalize()
        elif step == "cancel":
            b.cancel()
        trace.append((b.size, b._value, b.ready, b.finalized, b.cancelled, len(fired)))
    return trace


@pytest.mark.parametrize(
    "script",
    [
        ["add", "add", "finalize", "call", "call", "call"],
        ["add", "call", "finalize"],
        ["finalize"],
        ["sized", "call", "finalize", "call", "call"],
        ["add", "cancel", "call", "finalize"],
        ["sized", "finalize", "call", "call", "add"],
    ],
)
def test_state_follows_vine_step_by_step(script):
    if script[-1] == "add" and "sized" in script:
        # vine raises on adding to a full barrier: so must we
        for cls in (vine_barrier, barrier):
            with pytest.raises(ValueError, match="Cannot add promise to full barrier"):
                run_script(cls, script)
        return
    assert run_script(barrier, script) == run_script(vine_barrier, script)


def test_members_and_callback_from_the_constructor():
    members = [promise(), promise()]
    fired = []
    b = barrier(members, callback=lambda: fired.append(True))
    assert b.size == 2 and b.finalized
    members[0]()
    assert fired == []
    members[1]()
    assert fired == [True] and b.ready


def test_is_a_thenable_and_weakly_referenceable():
    b = barrier()
    assert isinstance(b, Thenable)
    assert weakref.ref(b)() is b


def test_promise_args_are_passed_when_fired():
    got = []
    b = barrier(args=(1, 2), kwargs={"k": 3}, size=1)
    b.finalize()
    b.then(lambda *a, **k: got.append((a, k)))
    b()
    assert got == [((1, 2), {"k": 3})]


def test_concurrent_arrivals_fire_exactly_once():
    threads, per_thread = 8, 2000
    b = barrier(size=threads * per_thread)
    b.finalize()
    fired = []
    b.then(lambda: fired.append(1))
    start = threading.Barrier(threads)

    def arrive():
        start.wait()
        for _ in range(per_thread):
            b()

    workers = [threading.Thread(target=arrive) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert fired == [1]
    assert b._value == threads * per_thread and b.ready


def test_callback_may_reenter_the_barrier():
    b = barrier(size=1)
    b.finalize()
    b.then(lambda: b())  # a re-entrant call must not deadlock
    b()
    assert b.ready and b._value == 1

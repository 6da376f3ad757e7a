"""What groups of chains push to Redis when their chains or steps have
options, or the group is applied with partial arguments or options,
turbogroup vs Celery 5.7.0, and how many chains took Celery's steps (the
others are built from their shape's template, ``plain_chains``)."""

from __future__ import annotations

import datetime

import pytest
from celery import chain
from celery.canvas import group as celery_group

from tests.integration.celery_wire import FIXED_NOW, canonical, drain
from turbogroup import group as turbo_group
from turbogroup import plain_chains

pytestmark = pytest.mark.redis


# Chains with options of their own (the same within a shape): each shape's
# first chain takes Celery's steps, the others its template (the number is
# how many took Celery's steps; None: the group took Celery's path).
OPTION_CHAIN_CASES = {
    "priority": (lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(priority=3), 1),
    "queue and shadow": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(queue="tg-q2", shadow="sh"),
        1,
    ),
    "two shapes by option": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(priority=i % 2),
        2,
    ),
    # equal in Python, written differently: two shapes
    "option values equal only in Python": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(time_limit=(60, 60.0)[i % 2]),
        2,
    ),
    # clock options: each chain's first message its own times (the clock
    # ticks at each read), the later steps' options only data
    "countdown": (lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(countdown=5), 1),
    "expires on the first step, countdown on a later one": (
        lambda t, i: chain(t["add"].s(i, i).set(expires=30), t["add"].s(1).set(countdown=2)),
        1,
    ),
    "an expiry as a time": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)).set(
            expires=(FIXED_NOW + datetime.timedelta(hours=1)).isoformat()
        ),
        1,
    ),
    # options set on the steps: the first step's reach its message, the
    # others' the chain field
    "first step's options": (
        lambda t, i: chain(t["add"].s(i, i).set(queue="tg-q2", priority=3), t["add"].s(1)),
        1,
    ),
    "later steps' options": (
        lambda t, i: chain(
            t["add"].s(i, i), t["add"].s(1).set(queue="tg-q2", soft_time_limit=5), t["add"].si(2, 2)
        ).set(shadow="sh"),
        1,
    ),
    "step and chain options together": (
        lambda t, i: chain(t["add"].s(i, i).set(priority=5, time_limit=9), t["add"].s(1)).set(
            priority=2
        ),
        1,
    ),
    "two shapes by a step's option": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1).set(priority=i % 2)),
        2,
    ),
    "a step's option values equal only in Python": (
        lambda t, i: chain(t["add"].s(i, i).set(retries=(1, True)[i % 2]), t["add"].s(1)),
        2,
    ),
    "a step's countdown": (
        lambda t, i: chain(t["add"].s(i, i).set(countdown=5), t["add"].s(1)),
        1,
    ),
    "a step's eta as a datetime (not atomic)": (
        lambda t, i: chain(
            t["add"].s(i, i).set(eta=FIXED_NOW + datetime.timedelta(hours=1)), t["add"].s(1)
        ),
        None,
    ),
    "a step's options not atomic": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1).set(headers={"h": 1})),
        None,
    ),
}


# Group calls with partial arguments and options (the same for every
# chain): each chain's first step takes them as Celery's chain.run gives
# them (an immutable first step keeps its own arguments).
GROUP_CALL_CASES = {
    "partial args": (
        lambda t, i: chain(t["add"].s(y=i), t["add"].s(1)),
        {"args": (7,)},
    ),
    "partial args and kwargs": (
        lambda t, i: chain(t["add"].s(), t["add"].s(i)),
        {"args": (7,), "kwargs": {"y": 8}},
    ),
    "partial kwargs over a step's own": (
        lambda t, i: chain(t["add"].s(x=i, y=i), t["add"].s(1)),
        {"kwargs": {"y": 3}},
    ),
    "immutable first steps": (
        lambda t, i: chain(t["add"].si(i, i), t["add"].s(1)),
        {"args": (7,), "kwargs": {"z": 8}},
    ),
    # the group's clone of a chain is not immutable (_chain.from_dict)
    "immutable chains": (
        lambda t, i: chain(t["add"].s(i), t["add"].s(1)).set(immutable=True),
        {"args": (7,), "kwargs": {}},
    ),
    "group options": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)),
        {"queue": "tg-q2", "priority": 4, "soft_time_limit": 30},
    ),
    "the group's countdown and expires": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)),
        {"countdown": 10, "expires": 120},
    ),
    "partial args, group and chain options": (
        lambda t, i: chain(t["add"].s(i), t["add"].s(1).set(priority=1)).set(shadow="sh"),
        {"args": [2], "priority": 4},
    ),
}


def ticking():
    """A clock that moves on a millisecond at each read."""
    ticks = iter(range(10**6))
    return lambda: FIXED_NOW + datetime.timedelta(milliseconds=next(ticks))


def _chains_match(wire_env, dispatch_reports, monkeypatch, build, whole_way, call):
    """The group of 12 chains ``build`` makes, applied with ``call``, pushes
    what Celery's does; ``whole_way`` chains took Celery's steps (None: the
    group took Celery's path)."""
    app, tasks, queues, client = wire_env
    everywhere = [*queues, "tg-q2"]

    def sent():
        return {k: v for k, v in drain(client, everywhere).items()}

    def canvas(g):
        return g(build(tasks, i) for i in range(12))

    started = []
    original = plain_chains.ChainMembers._whole_way

    def whole(self, task, *args, **kwargs):
        started.append(task)
        return original(self, task, *args, **kwargs)

    monkeypatch.setattr(plain_chains.ChainMembers, "_whole_way", whole)
    drain(client, everywhere)
    app.now = ticking()
    theirs_result = canvas(celery_group).apply_async(task_id="group-id", **call)
    theirs = sent()
    app.now = ticking()
    ours_result = canvas(turbo_group).apply_async(task_id="group-id", **call)
    ours = sent()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (12, 0)
    assert ours.keys() == theirs.keys()
    if whole_way is None:
        assert not started and type(ours_result._results) is list
        assert [len(v) for v in ours.values()] == [len(v) for v in theirs.values()]
        return
    assert type(ours_result._results).__name__ == "LazyResults", "the plain path was not taken"
    assert len(started) == whole_way
    for key in theirs:
        assert canonical(ours[key], ours_result.results) == canonical(
            theirs[key], theirs_result.results
        )


@pytest.mark.parametrize("case", list(OPTION_CHAIN_CASES))
def test_chains_with_options_push_what_celery_pushes(wire_env, dispatch_reports, monkeypatch, case):
    build, whole_way = OPTION_CHAIN_CASES[case]
    _chains_match(wire_env, dispatch_reports, monkeypatch, build, whole_way, {})


@pytest.mark.parametrize("case", list(GROUP_CALL_CASES))
def test_chains_of_a_group_call_push_what_celery_pushes(
    wire_env, dispatch_reports, monkeypatch, case
):
    build, call = GROUP_CALL_CASES[case]
    _chains_match(wire_env, dispatch_reports, monkeypatch, build, 1, call)

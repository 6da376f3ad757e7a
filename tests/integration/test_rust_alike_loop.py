"""The Rust per-child loop (``_core.AlikeQueue``) queues what the Python
loop queues: runs of alike children broken by every kind of child it
hands back (another task, options, a preset id, kwargs, immutability, a
nested group, a list of args), across step boundaries, push Celery's bytes in
Celery's order; and the loop is seen to do the work."""

from __future__ import annotations

import json

import pytest
from celery.canvas import Signature
from celery.canvas import group as celery_group

from tests.integration.celery_wire import dispatch, drain, normalized_plain
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis


def mixed(g, t):
    add, routed = t["add"], t["routed"]
    children = [add.s(i, i) for i in range(30)]
    children += [routed.s(i) for i in range(5)]
    children += [add.s(i, y=i) for i in range(20)]  # kwargs: copied
    children += [add.si(i, 1) for i in range(10)]  # another kind: immutable
    children += [g(add.s(i, 2) for i in range(3))]  # a nested group, unrolled
    children += [add.s(i, 3) for i in range(4)]  # positions now past indexes
    return g(children)


def runs(g, t):
    add, routed = t["add"], t["routed"]
    children = [add.s(i, i) for i in range(1200)]  # across a step boundary
    children += [add.s(i).set(priority=3) for i in range(5)]  # options: Python's
    children += [add.s(i, 1).set(task_id=f"preset-{i}") for i in range(3)]
    children += [add.s(i) if i % 2 else routed.s(i) for i in range(20)]  # changing kinds
    children += [Signature(add, args=[i, 4], app=add.app) for i in range(900)]  # list args
    children += [add.s(i, 5) for i in range(1100)]
    return g(children)


@pytest.mark.parametrize("build", [mixed, runs], ids=["mixed", "runs"])
def test_runs_of_alike_children_push_what_celery_pushes(wire_env, dispatch_reports, build):
    app, tasks, queues, client = wire_env
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, {})
    theirs = drain(client, queues)
    result = build(turbo_group, tasks).apply_async(task_id="group-id")
    ours = drain(client, queues)
    assert theirs and sorted(ours) == sorted(theirs)
    for key in theirs:
        assert [normalized_plain(m) for m in ours[key]] == [
            normalized_plain(m) for m in theirs[key]
        ], key
    # the result's ids are the messages', each list's in the result's order
    place = {r.id: i for i, r in enumerate(result.results)}
    assert len(place) == len(result) == sum(map(len, ours.values()))
    for messages in ours.values():
        places = [place[json.loads(m)["headers"]["id"]] for m in messages]
        assert places == sorted(places)
    (report,) = dispatch_reports()
    assert report.by_celery == 0
    assert report.looped > (3000 if build is runs else 40), report


def test_a_group_with_partial_arguments_stays_in_the_python_loop(wire_env, dispatch_reports):
    app, tasks, queues, client = wire_env
    add = tasks["add"]
    drain(client, queues)
    result = turbo_group(add.s(i) for i in range(50)).apply_async(args=(7,))
    assert len(result) == 50
    (report,) = dispatch_reports()
    assert (report.by_engine, report.looped) == (50, 0)
    drain(client, queues)

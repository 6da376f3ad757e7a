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
    children += [add.s(i).set(priority=3) for i in range(50)]  # options of a kind
    children += [add.s(i).set(priority=3.0) for i in range(5)]  # equal, written otherwise
    children += [add.s(i, 1).set(task_id=f"preset-{i}") for i in range(30)]  # own ids
    children += [add.s(i) if i % 2 else routed.s(i) for i in range(20)]  # changing kinds
    children += [Signature(add, args=[i, 4], app=add.app) for i in range(900)]  # list args
    children += [add.s(i, 5) for i in range(1100)]
    return g(children)


def partials(g, t):
    add = t["add"]
    children = [add.s() for _ in range(40)]  # the group's args and kwargs merged
    children += [add.si(i, 2) for i in range(10)]  # immutable: not merged
    children += [add.s().set(queue=t["add"].app.conf.task_default_queue) for i in range(10)]
    return g(children)


CASES = {
    "mixed": (mixed, {}, 40),
    "runs": (runs, {}, 3000),
    "partials": (partials, {"args": (7,), "kwargs": {"y": 1}}, 50),
}


@pytest.mark.parametrize("case", list(CASES))
def test_runs_of_alike_children_push_what_celery_pushes(wire_env, dispatch_reports, case):
    app, tasks, queues, client = wire_env
    build, options, looped = CASES[case]
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, options)
    theirs = drain(client, queues)
    result = build(turbo_group, tasks).apply_async(task_id="group-id", **options)
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
    assert report.looped > looped, report


def test_the_last_child_sent_decides_the_chord_after_an_empty_nested_group(wire_env, monkeypatch):
    app, tasks, queues, client = wire_env
    add, tsum = tasks["add"], tasks["tsum"]
    sizes = []
    monkeypatch.setattr(app.backend, "set_chord_size", lambda gid, size: sizes.append(size))

    def build(g):
        return g([add.s(1, 1).set(task_id="c1", chord=tsum.s()), g([])])

    drain(client, queues)
    build(celery_group).apply_async(task_id="group-id")
    theirs = drain(client, queues)
    build(turbo_group).apply_async(task_id="group-id")
    ours = drain(client, queues)
    assert sizes == [1, 1]
    assert {k: [normalized_plain(m) for m in v] for k, v in ours.items()} == {
        k: [normalized_plain(m) for m in v] for k, v in theirs.items()
    }


class _Unreadable:
    def __bool__(self):
        raise RuntimeError("no truth here")


def test_a_child_whose_flag_cannot_be_read_is_named_and_nothing_is_sent(wire_env):
    app, tasks, queues, client = wire_env
    add = tasks["add"]
    drain(client, queues)
    children = [add.s(i, i) for i in range(20)]
    children[5]["immutable"] = _Unreadable()  # read by the Rust loop first
    with pytest.raises(RuntimeError) as info:
        turbo_group(children).apply_async()
    assert info.value.group_child == 5
    assert drain(client, queues) == {}

"""turbogroup.group against celery.canvas.group on the same input.

Property tests in the rpds-py style: build the same canvas twice, once with
each implementation, and require the same observable result (generated ids
aside).
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from celery.canvas import Signature, chain
from celery.canvas import group as celery_group
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu.utils.json import dumps, loads

import turbogroup
from turbogroup import group

# A nested group spec: an int is a leaf add.s(n, n); a list is a group.
specs = st.recursive(
    st.integers(min_value=0, max_value=99),
    lambda children: st.lists(children, max_size=4),
    max_leaves=12,
)
top_specs = st.lists(specs, max_size=6)


def build(impl: type, spec: list[Any], app: Any) -> Any:
    def node(s: Any) -> Any:
        if isinstance(s, list):
            return impl([node(c) for c in s], app=app)
        return app.add.s(s, s)

    return impl([node(s) for s in spec], app=app)


def shape(sig: Any) -> Any:
    """Everything a signature carries except generated ids."""
    opts = {k: v for k, v in sig.options.items() if k not in {"task_id", "reply_to"}}
    return (sig.task, tuple(sig.args), dict(sig.kwargs), opts)


settings_ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@settings_
@given(spec=top_specs)
def test_freeze_flattens_in_celerys_order_with_its_group_indexes(app, spec):
    ours, theirs = build(group, spec, app), build(celery_group, spec, app)
    ours.set(task_id="gid", root_id="root")
    theirs.set(task_id="gid", root_id="root")
    r1, r2 = ours.freeze(parent_id="parent"), theirs.freeze(parent_id="parent")
    assert [shape(t) for t in ours.tasks] == [shape(t) for t in theirs.tasks]
    assert len(r1.results) == len(r2.results)
    assert r1.id == r2.id == "gid"
    assert [r.id for r in r1.results] == [t.options["task_id"] for t in ours.tasks]


@settings_
@given(spec=top_specs)
def test_prepared_unrolls_like_celery(app, spec):
    ours, theirs = build(group, spec, app), build(celery_group, spec, app)
    got = list(ours._prepared(ours.tasks, [7], "gid", "root", app))
    want = list(theirs._prepared(theirs.tasks, [7], "gid", "root", app))
    assert [(shape(s), g) for s, _, g in got] == [(shape(s), g) for s, _, g in want]
    assert [r.id for _, r, _ in got] == [s.options["task_id"] for s, _, _ in got]


def test_nested_group_freezes_reversed_as_celery_5_7_does(app):
    a, b, c, d = (app.add.s(i, i) for i in range(4))
    g = group([a, group([b, c], app=app), d], app=app)
    g.freeze()
    assert [t.args for t in g.tasks] == [(0, 0), (2, 2), (1, 1), (3, 3)]
    assert [t.options["group_index"] for t in g.tasks] == [0, 1, 2, 3]


def test_freeze_is_idempotent(app):
    g = group(app.add.s(1, 1), app.add.s(2, 2), app=app)
    first = g.freeze()
    second = g.freeze()
    assert first.id == second.id
    assert [r.id for r in first.results] == [r.id for r in second.results]


@pytest.mark.parametrize("impl", [group, celery_group], ids=["turbogroup", "celery"])
def test_generator_group_is_frozen_consuming_the_generator_once(app, impl):
    consumed = []

    def gen():
        for i in range(5):
            consumed.append(i)
            yield app.add.s(i, i)

    g = impl(gen(), app=app)
    res = g.freeze()
    assert len(res.results) == 5
    assert [t.args for t in g.tasks] == [(i, i) for i in range(5)]
    assert [r.id for r in res.results] == [t.options["task_id"] for t in g.tasks]
    # Celery's result barrier sizes itself with len(), which runs the
    # generator; each item is still produced once.
    assert consumed == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "make",
    [
        lambda app: group(app.add.s(1, 1), app.add.s(2, 2)),
        lambda app: group([app.add.s(1, 1), app.add.s(2, 2)]),
        lambda app: group(app.add.s(i, i) for i in (1, 2)),
        lambda app: group(group([app.add.s(1, 1), app.add.s(2, 2)])),
    ],
    ids=["args", "list", "generator", "another-group"],
)
def test_construction_forms_give_the_same_tasks(app, make):
    assert [t.args for t in make(app).tasks] == [(1, 1), (2, 2)]


def test_single_signature_is_cloned_into_a_one_element_list(app):
    sig = app.add.s(1, 1)
    g = group(sig)
    assert list(g.tasks) == [sig]
    assert g.tasks[0] is not sig


def test_dict_round_trip_gives_a_group_with_the_same_tasks(app):
    g = group(app.add.s(1, 1), app.add.s(2, 2), app=app, queue="q1")
    back = Signature.from_dict(loads(dumps(dict(g))), app=app)
    assert isinstance(back, celery_group)
    assert back.options == {"queue": "q1"}
    assert [t.args for t in back.tasks] == [[1, 1], [2, 2]]


def test_pickle_and_repr_match_celery(app):
    ours = group(app.add.s(1, 1), app.add.s(2, 2), app=app)
    theirs = celery_group(app.add.s(1, 1), app.add.s(2, 2), app=app)
    assert repr(ours) == repr(theirs)
    back = pickle.loads(pickle.dumps(ours))
    assert dict(back) == dict(ours)


def test_clone_keeps_the_turbogroup_class(app):
    g = group(app.add.s(1, 1), app=app)
    assert type(g.clone()) is group


def test_link_error_is_cloned_onto_every_child(app):
    g = group(app.add.s(1, 1), app.add.s(2, 2), app=app)
    errback = app.mul.s(0, 0)
    applied = g.link_error(errback)
    assert len(applied) == 2
    for child in g.tasks:
        (linked,) = child.options["link_error"]
        assert linked == errback
        assert linked is not errback
        assert linked["immutable"] is False


def test_link_goes_to_the_first_child_as_immutable(app):
    g = group(app.add.s(1, 1), app.add.s(2, 2), app=app)
    g.link(app.tsum.s())
    (linked,) = g.tasks[0].options["link"]
    assert linked["immutable"] is True
    assert "link" not in g.tasks[1].options


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("link", "Cannot add link to group: use a chord"),
        ("link_error", "Cannot add link to group: do that on individual tasks"),
    ],
)
def test_apply_async_refuses_links_like_celery(app, option, message):
    g = group(app.add.s(1, 1), app=app)
    with pytest.raises(TypeError, match=message):
        g.apply_async(**{option: app.tsum.s()})


def test_group_or_task_is_a_chord_whose_header_stays_turbogroup(app):
    c = group(app.add.s(1, 1), app.add.s(2, 2), app=app) | app.tsum.s()
    assert isinstance(c, turbogroup.chord)
    c.freeze()
    assert type(c.tasks) is group


def test_or_with_an_empty_group_returns_self(app):
    g = group(app.add.s(1, 1), app=app)
    assert (g | group([], app=app)) is g


def test_empty_group_apply_async_sends_nothing_and_returns_an_empty_result(app):
    res = group([], app=app).apply_async()
    assert isinstance(res, turbogroup.GroupResult)
    assert res.results == []


def test_eager_apply_gives_the_values_celery_gives(app):
    ours = group(app.add.s(i, i) for i in range(10)).set(app=app)
    theirs = celery_group(app.add.s(i, i) for i in range(10))
    assert ours.apply().get() == theirs.apply().get() == [i + i for i in range(10)]


def test_task_always_eager_runs_inline_with_partial_args(app):
    app.conf.task_always_eager = True
    g = group(app.add.s(1), app.add.s(2), app=app)
    assert g.apply_async((10,)).get() == [11, 12]
    assert g.delay(5).get() == [6, 7]


def test_skew_sets_increasing_countdowns(app):
    g = group(app.add.s(i, i) for i in range(3)).set(app=app)
    g.skew(start=1, step=2)
    assert [t.options["countdown"] for t in g.tasks] == [1, 3, 5]


def test_empty_chain_children_are_dropped_as_in_celery(app):
    ours = group(app.add.s(1, 1), chain(app=app), app.add.s(2, 2), app=app)
    theirs = celery_group(app.add.s(1, 1), chain(app=app), app.add.s(2, 2), app=app)
    assert len(ours.freeze().results) == len(theirs.freeze().results) == 2
    assert [shape(t) for t in ours.tasks] == [shape(t) for t in theirs.tasks]

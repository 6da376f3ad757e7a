"""What turbogroup publishes, a real Celery worker runs (Redis broker and
backend): results, chords, link_error callbacks, nested groups, eager mode."""

from __future__ import annotations

import time

import celery
import pytest
from celery.canvas import group as celery_group

import turbogroup
from tests.e2e.conftest import assert_link_error_runs_once_per_failure
from turbogroup import group

pytestmark = [pytest.mark.worker, pytest.mark.redis]
TIMEOUT = 60


def test_group_of_100_tasks_returns_results_in_order(tasks):
    add = tasks["add"]
    res = group(add.s(i, i) for i in range(100)).apply_async()
    assert isinstance(res, turbogroup.GroupResult)
    assert res.get(timeout=TIMEOUT) == [i + i for i in range(100)]
    assert res.completed_count() == 100
    assert res.ready() and res.successful()


def test_group_or_tsum_gives_the_sum(tasks):
    add, tsum = tasks["add"], tasks["tsum"]
    res = (group(add.s(i, i) for i in range(20)) | tsum.s())()
    assert res.get(timeout=TIMEOUT) == sum(i + i for i in range(20))
    assert res.parent.get(timeout=TIMEOUT) == [i + i for i in range(20)]


def test_partial_args_reach_every_mutable_child(tasks):
    add = tasks["add"]
    g = group(add.s(1), add.s(2), add.si(3, 3))
    assert g.apply_async((100,)).get(timeout=TIMEOUT) == [101, 102, 6]


def test_link_error_callback_runs_once_for_each_failing_child(tasks, redis_client, key_prefix):
    assert_link_error_runs_once_per_failure(tasks, redis_client, key_prefix, group, TIMEOUT)


@pytest.mark.parametrize(
    "canvas",
    [
        lambda g, t: g(t["add"].s(1, 1), g(t["add"].s(2, 2), t["add"].s(3, 3)), t["add"].s(4, 4)),
        lambda g, t: g(t["add"].s(1, 1) | g(t["add"].s(10), t["add"].s(20)), t["add"].s(5, 5)),
        lambda g, t: g(g(t["add"].s(i, 1) for i in range(3)) | t["tsum"].s(), t["add"].s(0, 0)),
    ],
    ids=["nested-group", "chain-ending-in-group", "chord-in-group"],
)
def test_nested_canvases_return_what_celery_returns(tasks, canvas):
    ours = canvas(group, tasks).apply_async().get(timeout=TIMEOUT)
    theirs = canvas(celery_group, tasks).apply_async().get(timeout=TIMEOUT)
    assert ours == theirs


def test_eager_mode_gives_the_same_values_as_the_worker(tasks, worker_app):
    add = tasks["add"]
    via_worker = group(add.s(i, 3) for i in range(10)).apply_async().get(timeout=TIMEOUT)
    assert group(add.s(i, 3) for i in range(10)).apply().get() == via_worker
    worker_app.conf.task_always_eager = True
    try:
        eager = group(add.s(i, 3) for i in range(10)).apply_async()
        assert eager.get() == via_worker
    finally:
        worker_app.conf.task_always_eager = False


def test_installed_celery_canvas_runs_through_turbogroup(tasks):
    add, tsum = tasks["add"], tasks["tsum"]
    turbogroup.install()
    try:
        g = celery.group(add.s(i, i) for i in range(10))
        assert type(g) is turbogroup.group
        res = celery.chain(g, tsum.s()).apply_async()
        assert res.get(timeout=TIMEOUT) == 90
    finally:
        turbogroup.uninstall()


def test_publish_signals_fire_once_per_task_and_the_worker_runs_each(tasks):
    from celery import signals

    add = tasks["add"]
    published = []

    def on_publish(sender=None, headers=None, **kwargs):
        published.append(headers["id"])

    signals.after_task_publish.connect(on_publish)
    try:
        res = group(add.s(i, 1) for i in range(25)).apply_async()
    finally:
        signals.after_task_publish.disconnect(on_publish)
    assert published == [r.id for r in res.results]
    assert res.get(timeout=TIMEOUT) == [i + 1 for i in range(25)]


def test_a_group_larger_than_one_batch_arrives_whole(tasks):
    add = tasks["add"]
    n = 2500  # several flushes of the bulk publisher
    res = group(add.s(i, 0) for i in range(n)).apply_async()
    assert res.get(timeout=TIMEOUT * 2) == list(range(n))


def test_installed_chord_header_is_built_by_the_engine_without_subscribing(
    tasks, worker_app, dispatch_reports
):
    """``celery.chord`` (installed): the header's children are built from
    one template, nothing SUBSCRIBEs per header task, the body gets the
    sum."""
    add, tsum = tasks["add"], tasks["tsum"]
    n = 1500
    turbogroup.install()
    try:
        res = celery.chord([add.s(i, i) for i in range(n)], tsum.s()).apply_async()
    finally:
        turbogroup.uninstall()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (n, 0)
    assert not worker_app.backend.result_consumer.subscribed_to
    assert res.get(timeout=TIMEOUT * 2) == sum(i + i for i in range(n))
    assert res.parent.get(timeout=TIMEOUT) == [i + i for i in range(n)]


def test_frozen_and_saved_group_is_built_by_the_engine(tasks, worker_app, dispatch_reports):
    add = tasks["add"]
    g = group(add.s(i, 1) for i in range(1200))
    frozen = g.freeze()
    frozen.save()
    res = g.apply_async()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (1200, 0)
    assert [r.id for r in res.results] == [r.id for r in frozen.results]
    restored = worker_app.GroupResult.restore(frozen.id)
    assert restored.get(timeout=TIMEOUT) == [i + 1 for i in range(1200)]
    frozen.forget()


def test_group_with_empty_chains_completes_as_celerys_does(tasks):
    # celery#9772: an empty chain has no task and no result.
    add = tasks["add"]

    def canvas(g):
        return g(celery.chain(), add.s(1, 2), celery.chain(), add.s(3, 4))

    assert canvas(group).apply_async().get(timeout=TIMEOUT) == [3, 7]
    assert canvas(celery_group).apply_async().get(timeout=TIMEOUT) == [3, 7]


@pytest.mark.parametrize("options", [{}, {"priority": 3}], ids=["plain", "with priority"])
def test_group_of_chains_is_built_by_the_engine_and_gives_celerys_values(
    tasks, dispatch_reports, options
):
    """Each chain's first task goes out in the group's batch with the rest
    of its chain in its message; the worker runs every step."""
    add = tasks["add"]

    def canvas(g):
        return g(celery.chain(add.s(i, i), add.s(1), add.s(10)).set(**options) for i in range(300))

    ours = canvas(group).apply_async()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (300, 0)
    # built from the first chain's template (plain_chains), results as ids
    assert type(ours._results).__name__ == "LazyResults"
    assert ours.get(timeout=TIMEOUT) == [i + i + 11 for i in range(300)]
    assert canvas(celery_group).apply_async().get(timeout=TIMEOUT) == ours.get()
    # the chain's earlier steps are the result's parents, as with Celery
    assert [r.parent.parent.get(timeout=TIMEOUT) for r in ours.results[:3]] == [0, 2, 4]


def test_clocked_children_are_built_by_the_engine_and_run_when_due(tasks, dispatch_reports):
    """Children with a countdown and an expiry, each its own eta: built from
    their kind's template, run by the worker once due (not before)."""
    add = tasks["add"]
    started = time.monotonic()
    res = group(add.s(i, i).set(countdown=1, expires=120) for i in range(200)).apply_async()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (200, 0)
    assert type(res._results).__name__ == "LazyResults"
    assert res.get(timeout=TIMEOUT) == [i + i for i in range(200)]
    assert time.monotonic() - started >= 1
    stored = [r.date_done for r in res.results]
    assert all(stored), "every child ran"


def test_chains_with_step_options_and_partial_args_give_celerys_values(tasks, dispatch_reports):
    """Chain members with options on their steps, in a group applied with
    partial arguments: built from the first chain's template, each chain's
    first step taking the partial argument as Celery gives it."""
    add = tasks["add"]

    def canvas(g):
        return g(
            celery.chain(add.s(i).set(priority=5), add.s(1).set(soft_time_limit=30))
            for i in range(200)
        )

    ours = canvas(group).apply_async((100,))
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (200, 0)
    assert type(ours._results).__name__ == "LazyResults"
    assert ours.get(timeout=TIMEOUT) == [100 + i + 1 for i in range(200)]
    assert canvas(celery_group).apply_async((100,)).get(timeout=TIMEOUT) == ours.get()

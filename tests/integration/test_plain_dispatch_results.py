"""A group of plain task signatures: dispatched by ``turbogroup.plain``,
its results kept as ids until touched (``turbogroup.result.LazyResults``).
What the caller gets back must still behave as Celery's ``GroupResult``
does, whether its results are made or collected from the ids.
"""

from __future__ import annotations

import pickle
import threading

import pytest
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult

from tests.integration.redis_queue import queued_ids
from turbogroup import group
from turbogroup.result import LazyResults

pytestmark = pytest.mark.redis


def store(app, task_id, value, status="SUCCESS"):
    app.backend.store_result(task_id, value, status)


def test_results_stay_ids_until_touched(redis_add_env, dispatch_reports):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(1500)).apply_async()
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("redis", 1500, 0)
    # all but the first child of each step of 1000 by the Rust loop
    assert report.looped == 1498
    assert isinstance(result._results, LazyResults)
    assert len(result) == 1500  # without making the results
    assert isinstance(result._results, LazyResults)
    children = result.results
    assert isinstance(children, list) and result.results is children
    frozen = add.s(0, 0).freeze()  # what Celery's freeze makes of a child
    assert all(type(r) is type(frozen) for r in children)
    assert all(r.backend is frozen.backend and r.app is frozen.app for r in children)
    assert broker.llen(queue) == 1500
    assert result[3] is children[3] and result.children is children
    again = pickle.loads(pickle.dumps(result))
    assert again == result and [r.id for r in again.results] == [r.id for r in children]
    assert [r.id for r in children] == queued_ids(broker, queue)


def test_collected_results_fire_the_group_barrier(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(300)).apply_async()
    fired = []
    result.then(lambda r: fired.append(r))
    assert isinstance(result._results, LazyResults)
    for i, child_id in enumerate(queued_ids(broker, queue)):
        app.backend.store_result(child_id, 2 * i, "SUCCESS")
    assert not fired
    assert result.completed_count() == 300
    assert result.get(timeout=10) == [2 * i for i in range(300)]
    assert result.ready() and result.successful()
    assert len(fired) == 1 and fired[0].id == result.id  # a weak proxy, as Celery's
    # a single child, touched apart, is the same object the group holds
    assert result.results[5].get(timeout=10) == 10


def test_results_made_in_another_thread_have_the_dispatchers_backend(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(20)).apply_async()
    made = []
    thread = threading.Thread(target=lambda: made.extend(result.results))
    thread.start()
    thread.join(10)
    assert len(made) == 20
    # Celery makes them while dispatching: with the dispatching thread's
    # backend (app.backend is per thread)
    assert {id(r.backend) for r in made} == {id(app.backend)}


def test_an_apps_own_group_result_class_gets_a_list(redis_add_env):
    app, add, queue, broker = redis_add_env

    class MyGroupResult(CeleryGroupResult):
        pass

    app.GroupResult = MyGroupResult
    result = group(add.s(i, i) for i in range(10)).apply_async()
    assert type(result) is MyGroupResult
    assert isinstance(result.results, list) and len(result.results) == 10
    assert all(isinstance(r, AsyncResult) for r in result.results)


def test_collection_reads_the_ids_without_making_results(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(1500)).apply_async()
    ids = queued_ids(broker, queue)
    for i, task_id in enumerate(ids[:700]):
        store(app, task_id, i)
    assert result.completed_count() == 700
    assert not result.ready() and result.waiting()
    assert isinstance(result._results, LazyResults)  # collected from the ids
    # made now: the ready ones cached and fulfilled, the others still waited on
    children = result.results
    for task_id in ids[:700]:
        app.backend.delete(app.backend.get_key_for_task(task_id))
    assert [r.result for r in children[:700]] == list(range(700))  # served from cache
    assert all(r.on_ready.ready for r in children[:700])
    assert not any(r.on_ready.ready for r in children[700:])
    fired = []
    children[3].then(lambda r: fired.append(r.id))  # a fulfilled promise calls at once
    assert fired == [ids[3]]
    group_fired = []
    result.then(lambda r: group_fired.append(r.id))
    for i, task_id in enumerate(ids[700:], 700):
        store(app, task_id, i)
    assert result.get(timeout=10) == list(range(1500))
    assert group_fired == [result.id]


def test_failures_from_the_ids_propagate_as_celerys(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(5)).apply_async()
    ids = queued_ids(broker, queue)
    for i, task_id in enumerate(ids):
        if i == 2:
            store(app, task_id, KeyError("boom"), "FAILURE")
        else:
            store(app, task_id, i)
    with pytest.raises(KeyError, match="boom"):
        result.get(timeout=10)
    values = result.get(timeout=10, propagate=False)
    assert isinstance(result._results, LazyResults)
    assert values[:2] == [0, 1] and isinstance(values[2], KeyError) and values[3:] == [3, 4]
    assert result.failed() and not result.successful() and result.completed_count() == 4


def test_a_subscription_elsewhere_makes_the_results_first(redis_add_env):
    app, add, queue, broker = redis_add_env
    result = group(add.s(i, i) for i in range(5)).apply_async()
    ids = queued_ids(broker, queue)
    other = app.AsyncResult(ids[0])
    other.then(lambda r: None)  # subscribes to the child's channel
    try:
        for i, task_id in enumerate(ids):
            store(app, task_id, i)
        assert result.get(timeout=10) == list(range(5))
        assert isinstance(result._results, list)  # Celery's path, results made
    finally:
        app.backend.remove_pending_result(other)

"""A state query (``completed_count()``) on a group kept as ids keeps each
plain success as its stored payload, counted ready, and decodes it only
when its meta is first read (``LazyResults.settle_states``): what the user
then sees (answers, metas, values, the ready barrier) is Celery's, and the
payloads that are not plain successes are decoded at once, as before."""

from __future__ import annotations

import datetime
import json
import threading

import pytest
from celery import states, uuid

from tests.integration.test_restored_groups import celerys_view, save_group, view
from turbogroup.install import install, uninstall
from turbogroup.lazy import LazyResults

pytestmark = pytest.mark.redis


def stored_group(app, n: int = 200) -> tuple[str, list[str]]:
    """Plain successes, and at fixed places what must be decoded at once:
    a failure, a tagged value (a datetime), an escaped string, a child with
    children, a started task, nothing stored."""
    backend = app.backend
    ids = [uuid() for _ in range(n)]
    special = (3, 5, 7, 9, 11, 13)
    for i, task_id in enumerate(ids):
        if i not in special:
            backend.mark_as_done(task_id, {"i": i, "text": "plain"})
    backend.mark_as_failure(ids[3], ValueError("boom"))
    backend.mark_as_done(ids[5], datetime.datetime(2026, 12, 4, 20, 0, 0))
    backend.mark_as_done(ids[7], "snow \u2603 man")
    grandchild = uuid()
    backend.mark_as_done(grandchild, 1)
    children = [[[grandchild, None], None]]
    meta = {"status": states.SUCCESS, "result": 9, "children": children, "task_id": ids[9]}
    backend.client.set(backend.get_key_for_task(ids[9]), json.dumps(meta))
    backend.store_result(ids[11], None, states.STARTED)
    # ids[13]: nothing stored
    return save_group(app, ids), ids


def kept_as_payloads(group) -> list[int]:
    nodes = group._results._nodes
    return [i for i, node in enumerate(nodes) if node._raw is not None and node._meta is None]


@pytest.fixture
def installed(request):
    install()
    request.addfinalizer(uninstall)


def test_completed_count_keeps_plain_successes_as_payloads(backend_app, installed):
    group_id, _ = stored_group(backend_app)
    ours = backend_app.GroupResult.restore(group_id)
    # all but the failure, the started task and the missing one
    assert ours.completed_count() == 200 - 3
    assert type(ours._results) is LazyResults and ours._results._made is None
    kept = kept_as_payloads(ours)
    # every plain success, and nothing that needed decoding
    assert kept == [i for i in range(200) if i not in (3, 5, 7, 9, 11, 13)]
    nodes = ours._results._nodes
    assert nodes[5]._meta["result"] == datetime.datetime(2026, 12, 4, 20, 0, 0)
    assert nodes[3]._meta["status"] == states.FAILURE
    assert nodes[11]._meta is None and nodes[13]._meta is None  # not ready: not cached


@pytest.mark.parametrize("then", ["completed_count", "ready", "failed", "successful", "waiting"])
def test_what_follows_a_state_query_is_celerys(backend_app, request, then):
    group_id, _ = stored_group(backend_app)
    theirs = celerys_view(backend_app, group_id, "completed_count")
    theirs_then = _celery_then(backend_app, group_id, then)
    install()
    request.addfinalizer(uninstall)
    ours = backend_app.GroupResult.restore(group_id)
    assert ours.completed_count() == theirs["answer"]
    assert kept_as_payloads(ours)  # the payloads were kept, not decoded
    assert view(ours, then) == theirs_then


def _celery_then(app, group_id, then):
    from tests.integration.test_restored_groups import sibling

    with sibling(app) as own:
        group = own.GroupResult.restore(group_id)
        group.completed_count()
        return view(group, then)


def test_kept_payloads_are_not_read_again(backend_app, installed):
    """As Celery reads a cached result no more: a second query counts the
    kept successes without reading them, even once they are gone."""
    group_id, ids = stored_group(backend_app)
    ours = backend_app.GroupResult.restore(group_id)
    first = ours.completed_count()
    backend_app.backend.client.delete(*[backend_app.backend.get_key_for_task(i) for i in ids])
    assert ours.completed_count() == first
    assert len(kept_as_payloads(ours)) == 194  # every plain success


def test_a_kept_payload_decodes_into_celerys_meta(backend_app, installed):
    group_id, ids = stored_group(backend_app, n=20)
    ours = backend_app.GroupResult.restore(group_id)
    ours.completed_count()
    node = ours._results._nodes[0]
    assert node._raw is not None
    stored = backend_app.backend.get_task_meta(ids[0])
    assert node._cache == stored and node._raw is None and node._meta is node._cache
    result = ours.results[0]  # made from the stand-in: its cache
    assert result._cache == stored and result.result == {"i": 0, "text": "plain"}


def test_the_ready_barrier_fires_when_every_child_is_counted(backend_app, installed):
    backend = backend_app.backend
    ids = [uuid() for _ in range(50)]
    for i, task_id in enumerate(ids):
        backend.mark_as_done(task_id, i)
    ours = backend_app.GroupResult.restore(save_group(backend_app, ids))
    assert not ours.on_ready.ready
    assert ours.completed_count() == 50
    assert len(kept_as_payloads(ours)) == 50
    assert ours.on_ready.ready


@pytest.mark.parametrize("query", ["get", "join"])
def test_get_after_a_state_query_is_celerys(backend_app, request, query):
    backend = backend_app.backend
    ids = [uuid() for _ in range(100)]
    for i, task_id in enumerate(ids[1:], 1):
        backend.mark_as_done(task_id, {"i": i})
    backend.mark_as_failure(ids[0], ValueError("first"))
    group_id = save_group(backend_app, ids)
    theirs = _celery_then(backend_app, group_id, query)
    install()
    request.addfinalizer(uninstall)
    ours = backend_app.GroupResult.restore(group_id)
    ours.completed_count()
    assert len(kept_as_payloads(ours)) == 99
    assert view(ours, query) == theirs


def test_threads_querying_and_collecting_one_group_agree(backend_app, installed):
    """Eight threads at once on one restored group, each counting then
    collecting: every thread sees every value, and each kept payload is
    decoded once (one meta object per child, the one its result holds)."""
    backend = backend_app.backend
    ids = [uuid() for _ in range(2000)]
    for i, task_id in enumerate(ids):
        backend.mark_as_done(task_id, i)
    ours = backend_app.GroupResult.restore(save_group(backend_app, ids))
    seen: list[tuple[int, list[int]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            count = ours.completed_count()
            seen.append((count, ours.get(timeout=10)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(seen) == 8
    assert all(seen_one == (2000, list(range(2000))) for seen_one in seen)
    assert ours.on_ready.ready
    nodes = ours._results._nodes
    results = ours.results
    assert all(r._cache is n._meta and n._raw is None for r, n in zip(results, nodes))

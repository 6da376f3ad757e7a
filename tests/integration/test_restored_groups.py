"""A saved group restored under ``install()`` keeps its children as ids
(``turbogroup.restore``) and behaves as Celery's restored group, on the
real Redis result backend: the same answers, caches, parents and ready
barrier, whether it is restored by ``app.GroupResult.restore``, Celery's
own class or the backend."""

from __future__ import annotations

import gc
from contextlib import contextmanager

import pytest
from celery import Celery, states, uuid
from celery.app.task import Context
from celery.backends import base as celery_backends_base
from celery.result import GroupResult as CeleryGroupResult
from celery.result import result_from_tuple as celery_result_from_tuple

from tests.integration.conftest import prefixed_backend_app
from turbogroup import restore
from turbogroup.install import install, uninstall
from turbogroup.lazy import LazyNode, LazyResults

pytestmark = pytest.mark.redis

QUERIES = ["completed_count", "ready", "successful", "failed", "waiting", "get", "join"]


@pytest.fixture
def installed(request):
    install()
    request.addfinalizer(uninstall)


def save_mixed_group(app) -> tuple[str, list[str]]:
    """A saved group of ten children: values, a failure, a custom state,
    nothing stored, a retry, and a child whose meta has children."""
    backend = app.backend
    ids = [uuid() for _ in range(10)]
    for i in (0, 1, 2, 5, 8):
        backend.mark_as_done(ids[i], {"value": i})
    backend.mark_as_failure(ids[3], ValueError("boom 3"))
    backend.store_result(ids[4], {"done": 40}, "PROGRESS")
    backend.mark_as_retry(ids[6], KeyError("again"))
    grandchild = uuid()
    backend.mark_as_done(grandchild, 7)
    backend.mark_as_done(ids[7], 70, request=Context(children=[app.AsyncResult(grandchild)]))
    # ids[9]: nothing stored
    return save_group(app, ids), ids


def _value(value):
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args)
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def _meta(meta):
    if meta is None:
        return None
    children = [(type(c).__name__, c.id) for c in meta.get("children") or []]
    return (meta["status"], _value(meta["result"]), children)


def view(group, query):
    """What a user can see after ``query`` on a restored group."""
    if query in ("get", "join"):
        answer = _value(getattr(group, query)(timeout=5, propagate=False))
    else:
        answer = getattr(group, query)()
    children = [
        (type(r).__mro__[1].__name__, r.id, r.parent, r.backend is r.app.backend, _meta(r._cache))
        for r in group.results
    ]
    return {
        "answer": answer,
        "children": children,
        "id": group.id,
        "parent": group.parent,
        "tuple": group.as_tuple(),
        "ready_barrier_fired": group.on_ready.ready,
        "len": len(group),
    }


@contextmanager
def sibling(app):
    """An app of its own on the same backend, for Celery's side: Celery's
    GroupResult subscribes and registers every child for good (its ready
    barrier), which would keep ``app``'s results on Celery's per-result
    path."""
    own = Celery("celery-side", set_as_current=False)
    own.conf.update(
        broker_url="memory://",
        result_backend=app.conf.result_backend,
        result_backend_transport_options=app.conf.result_backend_transport_options,
    )
    try:
        yield own
    finally:
        own.backend.result_consumer.stop()
        own.backend.client.connection_pool.disconnect()
        own.close()


def save_group(app, ids):
    group_id = uuid()
    with sibling(app) as own:
        CeleryGroupResult(group_id, [own.AsyncResult(i) for i in ids], app=own).save()
    return group_id


def celerys_view(app, group_id, query):
    """``view`` of Celery's own restored group."""
    with sibling(app) as own:
        return view(own.GroupResult.restore(group_id), query)


@pytest.mark.parametrize("query", [q for q in QUERIES if q not in ("get", "join")])
def test_state_queries_match_celerys_restored_group(backend_app, request, query):
    group_id, _ = save_mixed_group(backend_app)
    theirs = celerys_view(backend_app, group_id, query)
    install()
    request.addfinalizer(uninstall)
    ours = backend_app.GroupResult.restore(group_id)
    assert type(ours._results) is LazyResults
    assert view(ours, query) == theirs


@pytest.mark.parametrize("query", ["get", "join", "completed_count"])
def test_a_group_of_results_all_stored_matches_and_fires_its_barrier(backend_app, request, query):
    backend = backend_app.backend
    ids = [uuid() for _ in range(300)]
    for i, task_id in enumerate(ids):
        backend.mark_as_done(task_id, i)
    group_id = save_group(backend_app, ids)
    theirs = celerys_view(backend_app, group_id, query)
    install()
    request.addfinalizer(uninstall)
    ours = backend_app.GroupResult.restore(group_id)
    kept = ours._results
    assert type(kept) is LazyResults
    answer = (
        getattr(ours, query)() if query == "completed_count" else getattr(ours, query)(timeout=5)
    )
    # Collected from the ids: no result was made for it.
    assert ours._results is kept and kept._made is None
    assert ours.on_ready.ready  # the barrier counted every child
    assert answer == (300 if query == "completed_count" else list(range(300)))
    assert view(ours, query) == theirs


def test_every_way_to_restore_keeps_the_ids(backend_app, installed):
    group_id, ids = save_mixed_group(backend_app)
    backend = backend_app.backend
    for restored in (
        backend_app.GroupResult.restore(group_id),
        CeleryGroupResult.restore(group_id, app=backend_app),
        backend.restore_group(group_id),
    ):
        assert type(restored._results) is LazyResults
        assert [r.id for r in restored.results] == ids


def test_a_parent_and_a_plain_string_id_are_restored_as_celery_restores_them(backend_app, request):
    ids = [uuid() for _ in range(3)]
    parent_id, group_id = uuid(), uuid()
    # A tuple as an older Celery wrote it: each child as [id, None], and a parent.
    saved = [[group_id, [[parent_id, None], None]], [[i, None] for i in ids]]
    theirs = celery_result_from_tuple(saved, backend_app)
    install()
    request.addfinalizer(uninstall)
    ours = restore.result_from_tuple(saved, backend_app)
    assert type(ours._results) is LazyResults
    assert ours.parent == theirs.parent and ours.parent.id == parent_id
    assert ours.as_tuple() == theirs.as_tuple()
    assert [r.id for r in ours.results] == ids
    assert ours.results[0].parent is None


@pytest.mark.parametrize(
    "nodes",
    [
        pytest.param("nested", id="a nested group"),
        pytest.param("child-parent", id="a child with a parent"),
        pytest.param("empty", id="no children"),
        pytest.param(
            "int-id",
            id="an id that is not a string",
            # Celery's own result for it cannot unsubscribe when dropped.
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
    ],
)
def test_other_tuples_are_celerys(backend_app, installed, nodes):
    a, b = uuid(), uuid()
    children = {
        "nested": [[[a, None], None], [[b, None], [[[uuid(), None], None]]]],
        "child-parent": [[[a, None], None], [[b, [[a, None], None]], None]],
        "empty": [],
        "int-id": [[[a, None], None], [[7, None], None]],
    }[nodes]
    saved = [[uuid(), None], children]
    ours = restore.result_from_tuple(saved, backend_app)
    assert type(ours._results) is list
    assert ours.as_tuple() == celery_result_from_tuple(saved, backend_app).as_tuple()


def test_an_app_whose_group_result_is_its_own_keeps_celerys_restore(backend_app, installed):
    class Own(CeleryGroupResult):
        pass

    backend_app.__dict__["GroupResult"] = backend_app.subclass_with_self(Own)
    group_id, _ = save_mixed_group(backend_app)
    restored = backend_app.GroupResult.restore(group_id)
    assert isinstance(restored, Own) and type(restored.results) is list


def test_install_swaps_the_backends_restore_and_uninstall_gives_it_back():
    install()
    try:
        assert celery_backends_base.result_from_tuple is restore.result_from_tuple
    finally:
        uninstall()
    assert celery_backends_base.result_from_tuple is celery_result_from_tuple


def test_results_made_after_collection_hold_their_cache(backend_app, installed):
    group_id, ids = save_mixed_group(backend_app)
    restored = backend_app.GroupResult.restore(group_id)
    assert restored.completed_count() == 6
    made = restored.results
    assert made[0]._cache["result"] == {"value": 0}
    assert made[0].on_ready.ready  # fulfilled as Celery's read fulfils it
    assert made[9]._cache is None and made[9].state == states.PENDING


def test_a_collected_group_is_freed_without_the_cyclic_collector(backend_app, installed):
    """The stand-ins the collector made do not hold their group: dropping
    the group frees them and their metas at once."""
    group_id, _ = save_mixed_group(backend_app)
    gc.collect()
    gc.disable()
    try:
        restored = backend_app.GroupResult.restore(group_id)
        assert restored.completed_count() == 6
        assert type(restored._results._nodes[0]) is LazyNode
        del restored
        left = [o for o in gc.get_objects() if type(o) in (LazyNode, LazyResults)]
        assert left == []
    finally:
        gc.enable()


@pytest.fixture
def accented_app(redis_url):
    """An app whose keys carry a non-ASCII prefix (deleted afterwards)."""
    yield from prefixed_backend_app(redis_url, f"tg-\u00e9-{uuid()[:8]}:")


def test_non_ascii_keys_are_read_as_celery_reads_them(accented_app, installed):
    """Keys packed in Rust (prefix and id as UTF-8) over more than one MGET,
    and an id that is not a string read through the backend's own key."""
    backend = accented_app.backend
    ids = [f"\u00fc-{uuid()}" for _ in range(1500)]
    for i, task_id in enumerate(ids):
        backend.mark_as_done(task_id, i)
    group_id = save_group(accented_app, ids)
    theirs = celerys_view(accented_app, group_id, "get")
    ours = accented_app.GroupResult.restore(group_id)
    assert type(ours._results) is LazyResults
    assert view(ours, "get") == theirs and theirs["answer"] == list(range(1500))

    raw_id = f"raw-{uuid()}".encode()
    backend.mark_as_done(raw_id, "raw")
    made = accented_app.GroupResult(uuid(), [accented_app.AsyncResult(raw_id)])
    assert made.get(timeout=5) == ["raw"] == [accented_app.AsyncResult(raw_id).get(timeout=5)]

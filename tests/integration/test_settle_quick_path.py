"""The Rust settle loop (``_core.QuickFulfilment``) against the Python
loop it shortens, on the same metas: every node ends in the same state
(cache, promise, callbacks run), including the nodes the Rust loop hands
back, and the collector's own use of it is asserted to do the work."""

from __future__ import annotations

import pytest
from celery import states, uuid
from celery.result import AsyncResult
from vine import promise

from turbogroup import GroupResult
from turbogroup.barrier import results_barrier
from turbogroup.collect import settle
from turbogroup.collect.settle import NOT_FETCHED, Settler

pytestmark = pytest.mark.redis


class OwnCache(AsyncResult):
    """A result class that caches its own way: Celery's path only."""

    def _set_cache(self, d):
        self.seen = True
        return super()._set_cache(d)


def success(i, **extra):
    return {"status": states.SUCCESS, "result": i, "traceback": None, "children": [], **extra}


def scenario(app, calls):
    """Nodes and decoded metas covering each case the loops tell apart."""
    nodes, decoded = [], []

    def add(node, meta):
        nodes.append(node)
        decoded.append(meta)

    for i in range(5):
        add(app.AsyncResult(uuid()), success(i))
    cached = app.AsyncResult(uuid())
    cached._cache = success(-1)
    add(cached, success(99))
    add(app.AsyncResult(uuid()), None)  # nothing stored
    add(app.AsyncResult(uuid()), {"status": states.STARTED, "result": None})
    add(
        app.AsyncResult(uuid()),
        {
            "status": states.FAILURE,
            "result": {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"},
            "traceback": None,
            "children": [],
        },
    )
    with_children = app.AsyncResult(uuid())
    add(with_children, success(5, children=[[[uuid(), None], None]]))
    two = app.AsyncResult(uuid())
    two.on_ready.then(lambda r: calls.append(("first", r.id)))
    two.on_ready.then(lambda r: calls.append(("second", r.id)))
    add(two, success(7))
    extra = app.AsyncResult(uuid())
    extra.on_ready = promise(
        lambda r: calls.append(("own", r.id))
    )  # not AsyncResult's: Celery's path
    add(extra, success(8))
    for i in range(5):
        add(app.AsyncResult(uuid()), success(10 + i))
    return nodes, decoded


def end_state(node):
    """What settling leaves on a node; callbacks by kind (each run has its
    own barrier and lambdas)."""
    p = node.on_ready
    value = None if p.value is None else ([v is node for v in p.value[0]], p.value[1])
    pending = None if p._lvpending is None else [type(c).__name__ for c in p._lvpending]
    single = None if p._svpending is None else type(p._svpending).__name__
    return node._cache, p.ready, value, single, pending, getattr(node, "seen", False)


def run(app, quick):
    calls = []
    nodes, decoded = scenario(app, calls)
    b = results_barrier(nodes)
    settler = Settler(app.backend)
    if not quick:
        settler._quick_fulfilment = lambda *a: None
    metas = settler.settle(nodes, decoded)
    return nodes, metas, calls, b, settler.quickly_fulfilled


def test_the_rust_loop_ends_every_node_as_the_python_loop_does(backend_app):
    ours = run(backend_app, quick=True)
    python = run(backend_app, quick=False)
    nodes, metas, calls, b, quickly = ours
    p_nodes, p_metas, p_calls, p_b, p_quickly = python
    # The Rust loop did the plain successes; Python did all in the other run.
    assert quickly == 11 and p_quickly == 0
    assert len(metas) == len(p_metas) == len(nodes)
    for mine, theirs, meta, p_meta in zip(nodes, p_nodes, metas, p_metas):
        m, t = end_state(mine), end_state(theirs)
        assert m[1:] == t[1:]
        assert (m[0] is None) == (t[0] is None)
        assert meta["status"] == p_meta["status"]
        assert (meta.get("result") == p_meta.get("result")) or meta["status"] == states.FAILURE
    assert [c[0] for c in calls] == [c[0] for c in p_calls] == ["first", "second", "own"]
    assert b._value == p_b._value


def test_a_result_class_of_its_own_keeps_the_whole_list_in_python(backend_app):
    nodes = [backend_app.AsyncResult(uuid()) for _ in range(3)]
    nodes.insert(1, OwnCache(uuid(), app=backend_app))
    settler = Settler(backend_app.backend)
    metas = settler.settle(nodes, [success(i) for i in range(4)])
    assert [m["result"] for m in metas] == [0, 1, 2, 3]
    assert all(n._cache is not None and n.on_ready.ready for n in nodes)
    assert nodes[1].seen and settler.quickly_fulfilled == 0


def test_a_raising_callback_propagates_and_is_dropped_as_in_python(backend_app):
    def boom(result):
        raise RuntimeError("callback failed")

    outcomes = []
    for quick in (True, False):
        nodes = [backend_app.AsyncResult(uuid()) for _ in range(4)]
        nodes[2].on_ready.then(boom)
        nodes[2].on_ready.then(lambda r: None)
        settler = Settler(backend_app.backend)
        if not quick:
            settler._quick_fulfilment = lambda *a: None
        with pytest.raises(RuntimeError, match="callback failed"):
            settler.settle(nodes, [success(i) for i in range(4)])
        outcomes.append(([n._cache is not None for n in nodes], nodes[2].on_ready._lvpending))
    assert outcomes[0] == outcomes[1] == ([True, True, True, False], None)


def test_collecting_a_group_goes_through_the_rust_loop(backend_app, monkeypatch):
    settlers = []
    original = settle.Settler.__init__

    def recording(self, backend):
        original(self, backend)
        settlers.append(self)

    monkeypatch.setattr(settle.Settler, "__init__", recording)
    ids = [uuid() for _ in range(200)]
    for i, task_id in enumerate(ids):
        backend_app.backend.mark_as_done(task_id, i)
    res = GroupResult(uuid(), [backend_app.AsyncResult(i) for i in ids], app=backend_app)
    assert res.get(timeout=10) == list(range(200))
    assert sum(s.quickly_fulfilled for s in settlers) >= 199
    assert res.completed_count() == 200  # cached now: served without a read


def test_not_fetched_nodes_go_back_to_celerys_read(backend_app):
    node = backend_app.AsyncResult(uuid())
    backend_app.backend.mark_as_done(node.id, 3)
    settler = Settler(backend_app.backend)
    [meta] = settler.settle([node], [NOT_FETCHED])
    assert meta["result"] == 3 and node._cache is not None
    assert settler.quickly_fulfilled == 0


def test_a_callback_that_shortens_the_list_ends_the_settle_as_zip_would(backend_app):
    lengths = []
    for quick in (True, False):
        nodes = [backend_app.AsyncResult(uuid()) for _ in range(5)]
        nodes[1].on_ready.then(lambda r, nodes=nodes: (nodes.pop(), nodes.pop()))
        settler = Settler(backend_app.backend)
        if not quick:
            settler._quick_fulfilment = lambda *a: None
        metas = settler.settle(nodes, [success(i) for i in range(5)])
        lengths.append((len(metas), settler.quickly_fulfilled))
    assert lengths == [(3, 3), (3, 0)]

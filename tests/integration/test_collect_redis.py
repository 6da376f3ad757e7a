"""Batched collection on the real Redis result backend, against Celery's
GroupResult on the same stored results."""

from __future__ import annotations

import gc
import threading
import time

import pytest
import redis
import redis.connection
from celery import states, uuid
from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import GroupResult as CeleryGroupResult
from celery.result import ResultSet as CeleryResultSet

from tests.integration.stored_results import both, store
from turbogroup import GroupResult
from turbogroup.result import ResultSet

pytestmark = pytest.mark.redis


class RoundTrips:
    """Counts requests this process writes to Redis: each write of one or
    more packed commands (a command, a pipeline, a batch of MGETs)."""

    def __init__(self, monkeypatch):
        # Results of earlier tests (Celery's subscribe) UNSUBSCRIBE when
        # finalized: let the collector finalize them before counting.
        gc.collect()
        self.count = 0
        original = redis.connection.AbstractConnection.send_packed_command

        def send_packed_command(connection, *a, **k):
            self.count += 1
            return original(connection, *a, **k)

        monkeypatch.setattr(
            redis.connection.AbstractConnection, "send_packed_command", send_packed_command
        )


def test_get_returns_every_value_in_order_like_celery(backend_app):
    ids = store(backend_app, list(range(2500)))
    ours, theirs = both(backend_app, ids)
    assert ours.get(timeout=10) == theirs.get(timeout=10) == list(range(2500))
    assert ours.join(timeout=10) == list(range(2500))


def test_state_queries_match_celery_in_at_most_two_round_trips(backend_app, monkeypatch):
    ids = store(backend_app, list(range(3000)), failures={5, 17}, pending={40, 41})
    ours, theirs = both(backend_app, ids)
    want = {
        "completed_count": theirs.completed_count(),
        "ready": theirs.ready(),
        "successful": theirs.successful(),
        "failed": theirs.failed(),
        "waiting": theirs.waiting(),
    }
    assert want["completed_count"] == 2996
    trips = RoundTrips(monkeypatch)
    for name, expected in want.items():
        before = trips.count
        assert getattr(ours, name)() == expected, name
        assert trips.count - before <= 2, name


def test_propagate_raises_the_first_failure_in_order(backend_app):
    ids = store(backend_app, list(range(50)), failures={30, 10})
    ours, _ = both(backend_app, ids)
    with pytest.raises(ValueError, match="boom 10"):
        ours.join(timeout=5)
    ours, _ = both(backend_app, ids)
    with pytest.raises(ValueError, match="boom 10"):
        ours.get(timeout=5)


def test_propagate_false_puts_exceptions_in_place_like_celery(backend_app):
    ids = store(backend_app, list(range(20)), failures={3}, revoked={7})
    ours, theirs = both(backend_app, ids)
    got = ours.get(timeout=5, propagate=False)
    want = theirs.get(timeout=5, propagate=False)
    assert [type(v) for v in got] == [type(v) for v in want]
    assert isinstance(got[3], ValueError) and isinstance(got[7], TaskRevokedError)
    assert [v for i, v in enumerate(got) if i not in (3, 7)] == [
        i for i in range(20) if i not in (3, 7)
    ]


def test_revoked_task_propagates(backend_app):
    ids = store(backend_app, [1, 2], revoked={1})
    ours, _ = both(backend_app, ids)
    with pytest.raises(TaskRevokedError):
        ours.get(timeout=5)


def test_timeout_raises_celerys_timeout_error(backend_app):
    ids = store(backend_app, [1, 2, 3], pending={2})
    ours, _ = both(backend_app, ids)
    started = time.monotonic()
    with pytest.raises(CeleryTimeoutError, match="The operation timed out"):
        ours.get(timeout=0.3)
    assert time.monotonic() - started < 3
    with pytest.raises(CeleryTimeoutError):
        ours.join(timeout=0)


def test_waits_for_results_stored_later_including_retried_tasks(backend_app):
    ids = store(backend_app, [1, 2, 3], pending={1, 2})
    backend_app.backend.mark_as_retry(ids[2], RuntimeError("again"))
    ours, _ = both(backend_app, ids)

    def finish():
        time.sleep(0.3)
        backend_app.backend.mark_as_done(ids[1], 20)
        backend_app.backend.mark_as_done(ids[2], 30)

    worker = threading.Thread(target=finish)
    worker.start()
    try:
        assert ours.get(timeout=10, interval=0.05) == [1, 20, 30]
    finally:
        worker.join()


def test_callback_takes_the_values_as_celery_does(backend_app):
    ids = store(backend_app, [10, 20, 30])
    ours, _ = both(backend_app, ids)
    seen = []
    assert ours.join_native(callback=lambda tid, v: seen.append((tid, v))) is None
    assert seen == list(zip(ids, [10, 20, 30]))
    seen.clear()
    assert ours.join(callback=lambda tid, v: seen.append((tid, v))) == []
    assert seen == list(zip(ids, [10, 20, 30]))


def test_on_progress_reports_counts_up_to_the_total(backend_app):
    ids = store(backend_app, list(range(100)))
    ours, _ = both(backend_app, ids)
    reports = []
    assert ours.get(on_progress=lambda done, total: reports.append((done, total))) == list(
        range(100)
    )
    assert reports[-1] == (100, 100)
    assert [d for d, _ in reports] == sorted(d for d, _ in reports)


def test_collected_results_are_cached_and_fire_the_ready_barrier(backend_app):
    ids = store(backend_app, [1, 2, 3])
    ours, _ = both(backend_app, ids)
    fired = []
    ours._on_full.then(lambda *a: fired.append(True))
    ours._on_full.finalize()
    assert ours.get() == [1, 2, 3]
    assert all(r._cache["status"] == states.SUCCESS for r in ours.results)
    assert fired == [True]


def test_nested_group_results_are_collected(backend_app):
    inner_ids = store(backend_app, [5, 6])
    outer_ids = store(backend_app, [1, 2])
    inner = GroupResult(uuid(), [backend_app.AsyncResult(i) for i in inner_ids], app=backend_app)
    outer = GroupResult(
        uuid(),
        [backend_app.AsyncResult(outer_ids[0]), inner, backend_app.AsyncResult(outer_ids[1])],
        app=backend_app,
    )
    assert outer.get(timeout=5) == [1, [5, 6], 2]
    assert outer.join(timeout=5) == [1, [5, 6], 2]
    assert outer.completed_count() == 3 and outer.ready()


def test_result_set_is_batched_too(backend_app, monkeypatch):
    ids = store(backend_app, list(range(500)))
    rs = ResultSet([backend_app.AsyncResult(i) for i in ids], app=backend_app)
    trips = RoundTrips(monkeypatch)
    assert rs.completed_count() == 500
    assert trips.count <= 2


def promise_state(result):
    p = result.on_ready
    value = None if p.value is None else (list(p.value[0]), p.value[1])
    return p.ready, value, p._svpending, p._lvpending, result._cache


def test_cached_children_and_their_promises_end_as_in_celery(backend_app):
    ids = store(backend_app, [{"a": [1, 2.5]}, "x", None, 7], failures={3})
    ours, theirs = both(backend_app, ids)
    calls = {"ours": [], "theirs": []}
    for name, res in (("ours", ours), ("theirs", theirs)):
        # An extra callback on a child's promise (no subscription: the
        # short path runs it), and on the group.
        res.results[1].on_ready.then(lambda r, name=name: calls[name].append(("child", r.id)))
        res.then(lambda r, name=name: calls[name].append(("group", len(r))))
        assert res.get(timeout=10, propagate=False)[:3] == [{"a": [1, 2.5]}, "x", None]
    # Each fires once (in which order Celery's pub/sub join caches the
    # children varies from run to run).
    assert sorted(c[0] for c in calls["ours"]) == ["child", "group"]
    assert sorted(c[0] for c in calls["theirs"]) == ["child", "group"]
    for mine, celerys in zip(ours.results, theirs.results):
        m_ready, m_value, m_sv, m_lv, m_cache = promise_state(mine)
        c_ready, c_value, c_sv, c_lv, c_cache = promise_state(celerys)
        assert (m_ready, m_sv, m_lv) == (c_ready, c_sv, c_lv) == (True, None, None)
        assert m_value == ([mine], {}) and c_value == ([celerys], {})
        assert {k: v for k, v in m_cache.items() if k != "result"} == {
            k: v for k, v in c_cache.items() if k != "result"
        }
    assert [r._cache["result"] for r in ours.results[:3]] == [{"a": [1, 2.5]}, "x", None]
    assert ours.on_ready.ready and theirs.on_ready.ready


def test_a_subscribed_child_is_cached_through_celerys_own_path(backend_app):
    ids = store(backend_app, [1, 2, 3])
    ours = GroupResult(uuid(), [backend_app.AsyncResult(i) for i in ids], app=backend_app)
    seen = []
    ours.results[0].then(lambda r: seen.append(r.id))  # registers and subscribes
    try:
        assert ours.get(timeout=10) == [1, 2, 3]
        assert seen == [ids[0]]
        key = backend_app.backend.get_key_for_task(ids[0])
        assert key not in backend_app.backend.result_consumer.subscribed_to
    finally:
        backend_app.backend.remove_pending_result(ours.results[0])


def test_results_subscribed_elsewhere_leave_the_others_on_the_short_path(backend_app, monkeypatch):
    """Another result registered and subscribed (by Celery's own group, a
    restored group's barrier) sends only that id through Celery's removal
    bookkeeping, not every result collected; it stays registered and
    subscribed as Celery leaves it."""
    backend = backend_app.backend
    elsewhere = backend_app.AsyncResult(uuid())
    elsewhere.then(lambda r: None)  # registers and subscribes
    ids = store(backend_app, list(range(40)))
    twin = backend_app.AsyncResult(ids[5])  # one of ours, registered by another object
    twin.then(lambda r: None)
    removals = []
    original = type(backend)._remove_pending_result

    def counting(self, result):
        removals.append(result.id)
        return original(self, result)

    gc.collect()  # earlier tests' results, whose finalizers remove them
    monkeypatch.setattr(type(backend), "_remove_pending_result", counting)
    try:
        ours = GroupResult(uuid(), [backend_app.AsyncResult(i) for i in ids], app=backend_app)
        assert ours.get(timeout=10) == list(range(40))
        assert [i for i in removals if i in set(ids)] == [ids[5]]
        consumer = backend.result_consumer
        assert backend.get_key_for_task(elsewhere.id) in consumer.subscribed_to
        assert backend.get_key_for_task(ids[5]) in consumer.subscribed_to
        assert twin.id in backend._pending_results.concrete  # still waiting, as with Celery
    finally:
        backend.remove_pending_result(elsewhere)
        backend.remove_pending_result(twin)


@pytest.mark.parametrize(
    ("query", "failures", "pending"),
    [
        ("successful", {1}, ()),
        ("failed", {1}, ()),
        ("ready", (), {1}),
        ("waiting", (), {1}),
        ("completed_count", {1}, ()),
    ],
)
def test_state_queries_read_and_cache_only_what_celery_does(backend_app, query, failures, pending):
    ids = store(backend_app, [0, 1, 2, 3], failures=failures, pending=pending)
    ours, theirs = both(backend_app, ids)
    assert getattr(ours, query)() == getattr(theirs, query)()
    cached = [r._cache is not None for r in ours.results]
    assert cached == [r._cache is not None for r in theirs.results]
    assert [r.on_ready.ready for r in ours.results] == [r.on_ready.ready for r in theirs.results]


def test_a_repeated_task_id_is_handed_out_once_into_its_last_slot_like_celery(backend_app):
    a, c = store(backend_app, [1, 2])
    results = {}
    for name, cls in (("ours", GroupResult), ("theirs", CeleryGroupResult)):
        res = cls(uuid(), [backend_app.AsyncResult(i) for i in (a, c, a)], app=backend_app)
        got = res.get(timeout=10)
        cached = [r._cache is not None for r in res.results]
        calls = []
        res = cls(uuid(), [backend_app.AsyncResult(i) for i in (a, c, a)], app=backend_app)
        res.get(timeout=10, callback=lambda task_id, value, calls=calls: calls.append(task_id))
        joined = cls(uuid(), [backend_app.AsyncResult(i) for i in (a, c, a)], app=backend_app)
        results[name] = (got, cached, sorted(calls), joined.join(timeout=10))
    assert (
        results["ours"]
        == results["theirs"]
        == (
            [None, 2, 1],
            [True, True, True],
            sorted([a, c]),
            [1, 2, 1],
        )
    )


def test_result_cache_max_fills_the_backend_cache_as_celery(redis_url, backend_app) -> None:
    backend_app.conf.result_cache_max = 50
    ids = store(backend_app, list(range(80)), failures={3})
    ours, theirs = both(backend_app, ids)
    assert ours.completed_count() == 79
    ours_cache = list(backend_app.backend._cache)
    backend_app.backend._cache.clear()
    assert theirs.completed_count() == 79
    assert ours_cache == list(backend_app.backend._cache)
    assert len(ours_cache) == 50
    # A cached meta is served without reading the key, as Celery does.
    ours, _ = both(backend_app, ids)
    backend_app.backend._cache[ours_cache[0]] = {"status": states.SUCCESS, "result": "cached"}
    assert "cached" in ours.get(propagate=False, timeout=10)


def test_maybe_throw_equals_celerys_in_one_round_trip(backend_app, monkeypatch) -> None:
    ids = store(backend_app, list(range(500)), failures={300, 400}, pending={10, 20})
    ours, theirs = both(backend_app, ids)
    seen: dict[str, list] = {"ours": [], "theirs": []}
    ours.maybe_throw(callback=lambda i, v: seen["ours"].append((i, repr(v))), propagate=False)
    theirs.maybe_throw(callback=lambda i, v: seen["theirs"].append((i, repr(v))), propagate=False)
    assert seen["ours"] == seen["theirs"]
    ours, theirs = both(backend_app, ids)
    trips = RoundTrips(monkeypatch)
    with pytest.raises(ValueError, match="boom 300"):
        ours.maybe_throw()
    assert trips.count == 1
    monkeypatch.undo()
    with pytest.raises(ValueError, match="boom 300"):
        theirs.maybe_throw()
    # Celery's loop stops at the failure: so does what is read and cached.
    assert [r._cache is not None for r in ours.results] == [
        r._cache is not None for r in theirs.results
    ]


def _nested(app, ids, cls):
    """``[a, [b, c, d], e, [f, [g, h]]]`` over ``ids``, of ``cls``."""
    r = [app.AsyncResult(i) for i in ids]
    inner = cls(uuid(), [r[6], r[7]], app=app)
    return cls(
        uuid(),
        [r[0], cls(uuid(), r[1:4], app=app), r[4], cls(uuid(), [r[5], inner], app=app)],
        app=app,
    )


def _leaf_view(group):
    out = []
    for node in group.results:
        if isinstance(node, CeleryResultSet):
            out.append(_leaf_view(node))
        else:
            out.append((node._cache is not None, node.on_ready.ready))
    return out


@pytest.mark.parametrize("query", ["completed_count", "ready", "successful", "failed", "waiting"])
@pytest.mark.parametrize(
    ("failures", "pending"), [((2,), ()), ((), (2,)), ((6,), (1,)), ((), ()), ((0,), (7,))]
)
def test_nested_sets_read_and_cache_only_what_celery_does(backend_app, query, failures, pending):
    """Celery's query over a nested set stops at that set's first child
    that decides it (``all()``/``any()`` of the children's own query), and
    only what it read is cached."""
    ids = store(backend_app, list(range(8)), failures=failures, pending=pending)
    ours = _nested(backend_app, ids, GroupResult)
    theirs = _nested(backend_app, ids, CeleryGroupResult)
    assert getattr(ours, query)() == getattr(theirs, query)()
    assert _leaf_view(ours) == _leaf_view(theirs)

"""Batched collection on Celery's database result backend (SQLAlchemy, on
the tests' PostgreSQL), against Celery's GroupResult on the same rows."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery, states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import GroupResult as CeleryGroupResult

from turbogroup import GroupResult
from turbogroup.collect import choose, database
from turbogroup.collect.database import DatabaseCollector

pytest.importorskip("sqlalchemy")
pytestmark = pytest.mark.postgres


def database_app(postgres_url: str, name: str | None = None, **conf: Any) -> Celery:
    """An app on the database backend, its tables named for this test."""
    name = name or f"tg_{uuid.uuid4().hex[:10]}"
    app = Celery("turbogroup-database", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend=f"db+{postgres_url}",
        database_table_names={"task": f"{name}_task", "group": f"{name}_group"},
        **conf,
    )
    return app


def drop_tables(app: Celery) -> None:
    from sqlalchemy import text

    backend = app.backend
    tables = app.conf.database_table_names
    engine = backend.session_manager.get_engine(backend.url)
    with engine.begin() as conn:
        for table in tables.values():
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}"'))
    for engine in list(backend.session_manager._engines.values()):
        engine.dispose()
    app.close()


@pytest.fixture(params=[False, True], ids=["plain", "extended"])
def db_app(request, postgres_url) -> Iterator[Celery]:
    app = database_app(postgres_url, result_extended=request.param)
    yield app
    drop_tables(app)


class Statements:
    """Counts the SELECTs this process sends to the database."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        # Every engine: outside a worker Celery makes one per session.
        self.count = 0
        self.engine = Engine

        def count(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("SELECT"):
                self.count += 1

        self._count = count
        event.listen(self.engine, "before_cursor_execute", count)

    def close(self) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._count)


def store(app: Celery, n: int, failures=(), revoked=(), pending=(), children=()) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    with pooled(app):
        for i, task_id in enumerate(ids):
            _store_one(app, i, task_id, failures, revoked, pending, children)
    return ids


@contextmanager
def pooled(app: Celery) -> Iterator[None]:
    """Celery's sessions on one pooled engine, as in a forked worker (else
    each is a new engine and connection, ~20 ms a store): stores go faster,
    and what they write is the same."""
    manager = app.backend.session_manager
    manager.forked = True
    try:
        yield
    finally:
        manager.forked = False


def _store_one(app: Celery, i: int, task_id: str, failures, revoked, pending, children) -> None:
    backend = app.backend
    if i in pending:
        return
    if i in failures:
        backend.mark_as_failure(task_id, ValueError(f"boom {i}"))
    elif i in revoked:
        backend.mark_as_revoked(task_id, "terminated")
    elif i in children:
        child = app.AsyncResult(str(uuid.uuid4()))
        backend.store_result(task_id, i, states.SUCCESS, request=_Request(task_id, [child]))
    else:
        backend.mark_as_done(task_id, {"i": i, "s": f"v{i}"})


class _Request:
    """What store_result reads of a task request, for a task with children."""

    def __init__(self, task_id: str, children: list[Any]) -> None:
        self.id = task_id
        self.children = children
        self.ignore_result = False
        self.group = None
        self.parent_id = None
        self.root_id = task_id
        self.task = "tests.add"
        self.args = (1, 2)
        self.kwargs = {"k": "v"}
        self.hostname = "worker@test"
        self.retries = 0
        self.delivery_info = {"routing_key": "celery"}
        self.stamped_headers = None


def both(app: Celery, ids: list[str]) -> tuple[Any, Any]:
    ours = GroupResult(str(uuid.uuid4()), [app.AsyncResult(i) for i in ids], app=app)
    theirs = CeleryGroupResult(str(uuid.uuid4()), [app.AsyncResult(i) for i in ids], app=app)
    return ours, theirs


def test_the_database_collector_is_chosen(db_app) -> None:
    ids = store(db_app, 3)
    ours, _ = both(db_app, ids)
    assert isinstance(choose.collector_for(ours.results), DatabaseCollector)


def test_get_equals_celerys_with_one_query_per_chunk(db_app, monkeypatch) -> None:
    # Few ids per IN (...), so that Celery's one read per result stays short.
    monkeypatch.setattr(database, "IN_CHUNK", 40)
    n = 100
    ids = store(db_app, n, children={3, 700})
    ours, theirs = both(db_app, ids)
    selects = Statements()
    try:
        got = ours.get(timeout=30)
        ours_selects = selects.count
        assert got == theirs.get(timeout=60)
    finally:
        selects.close()
    # The stored rows are read in one poll: one SELECT per chunk of ids
    # (Celery's loop makes one per result).
    assert ours_selects == 3
    for mine, celerys in zip(ours.results, theirs.results):
        assert mine._cache == celerys._cache


def test_state_queries_equal_celerys(db_app) -> None:
    ids = store(db_app, 60, failures={5, 17}, revoked={30}, pending={40, 41})
    for query in ("completed_count", "ready", "successful", "failed", "waiting"):
        ours, theirs = both(db_app, ids)
        selects = Statements()
        try:
            mine = getattr(ours, query)()
            ours_selects = selects.count
        finally:
            selects.close()
        assert mine == getattr(theirs, query)(), query
        assert 1 <= ours_selects <= 2, (query, ours_selects)


def test_failures_propagate_as_celerys(db_app) -> None:
    ids = store(db_app, 60, failures={40, 7}, revoked={50})
    ours, theirs = both(db_app, ids)
    with pytest.raises(ValueError) as mine:
        ours.get(timeout=10)
    with pytest.raises(ValueError) as celerys:
        theirs.get(timeout=10)
    assert str(mine.value) == str(celerys.value) == "boom 7"
    ours, theirs = both(db_app, ids)
    assert [repr(v) for v in ours.get(timeout=10, propagate=False)] == [
        repr(v) for v in theirs.get(timeout=10, propagate=False)
    ]


def test_waits_for_results_stored_later(db_app) -> None:
    ids = store(db_app, 100, pending=set(range(50, 100)))
    ours, _ = both(db_app, ids)

    def store_rest() -> None:
        time.sleep(0.4)
        for i in range(50, 100):
            db_app.backend.mark_as_done(ids[i], {"i": i, "s": f"v{i}"})

    writer = threading.Thread(target=store_rest)
    writer.start()
    try:
        assert ours.get(timeout=30) == [{"i": i, "s": f"v{i}"} for i in range(100)]
    finally:
        writer.join()


def test_timeout_while_results_are_pending(db_app) -> None:
    ids = store(db_app, 20, pending={19})
    ours, _ = both(db_app, ids)
    started = time.monotonic()
    with pytest.raises(CeleryTimeoutError):
        ours.get(timeout=0.3)
    assert time.monotonic() - started < 5


def test_result_cache_max_fills_the_backend_cache_as_celery(postgres_url) -> None:
    name = f"tg_{uuid.uuid4().hex[:10]}"
    apps = [database_app(postgres_url, name, result_cache_max=50) for _ in range(2)]
    try:
        ids = store(apps[0], 80, failures={3})
        ours = GroupResult(str(uuid.uuid4()), [apps[0].AsyncResult(i) for i in ids], app=apps[0])
        theirs = CeleryGroupResult(
            str(uuid.uuid4()), [apps[1].AsyncResult(i) for i in ids], app=apps[1]
        )
        assert ours.completed_count() == theirs.completed_count() == 79
        assert list(apps[0].backend._cache) == list(apps[1].backend._cache)
        assert len(apps[0].backend._cache) == 50
        # A cached meta is served without reading the row, as Celery does.
        ours = GroupResult(str(uuid.uuid4()), [apps[0].AsyncResult(i) for i in ids], app=apps[0])
        cached_id = next(iter(apps[0].backend._cache))
        apps[0].backend._cache[cached_id] = {"status": states.SUCCESS, "result": "from cache"}
        assert "from cache" in ours.get(propagate=False, timeout=10)
    finally:
        drop_tables(apps[0])
        apps[1].close()

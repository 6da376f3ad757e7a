"""A real Celery worker storing results in Celery's database backend
(PostgreSQL through SQLAlchemy; Redis broker): turbogroup collects what
the worker stored in bulk, and gives what Celery's GroupResult gives."""

from __future__ import annotations

import uuid

import celery
import pytest
from celery.backends.database import DatabaseBackend
from celery.canvas import group as celery_group
from celery.contrib.testing.worker import start_worker

import turbogroup
from tests.conftest import REDIS_BROKER_DB
from tests.e2e.conftest import _delete_prefixed, make_worker_app
from tests.integration.test_collect_database import drop_tables
from turbogroup import chord, group
from turbogroup.collect.database import DatabaseCollector

pytest.importorskip("sqlalchemy")
pytestmark = [pytest.mark.worker, pytest.mark.redis, pytest.mark.postgres]
TIMEOUT = 60


@pytest.fixture(scope="module")
def db_worker_app(redis_url, postgres_url, key_prefix, redis_client):
    name = f"tg_{uuid.uuid4().hex[:10]}"
    app = make_worker_app(
        "turbogroup-e2e-database",
        key_prefix,
        redis_client,
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        broker_transport_options={"global_keyprefix": key_prefix},
        task_default_queue=f"{key_prefix}celery",
        result_backend=f"db+{postgres_url}",
        database_table_names={"task": f"{name}_task", "group": f"{name}_group"},
        result_extended=True,
    )
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=True):
        yield app
    drop_tables(app)
    _delete_prefixed(f"{redis_url}/{REDIS_BROKER_DB}", key_prefix)


@pytest.fixture
def read_counts(monkeypatch):
    """Calls of Celery's one-result read, and of the collector's bulk read."""
    counts = {"celery": 0, "bulk": 0}
    per_result, bulk = DatabaseBackend._get_task_meta_for, DatabaseCollector._read

    def count_per_result(self, task_id):
        counts["celery"] += 1
        return per_result(self, task_id)

    def count_bulk(self, nodes):
        counts["bulk"] += 1
        return bulk(self, nodes)

    monkeypatch.setattr(DatabaseBackend, "_get_task_meta_for", count_per_result)
    monkeypatch.setattr(DatabaseCollector, "_read", count_bulk)
    return counts


def test_group_results_equal_celerys_read_in_bulk(db_worker_app, read_counts):
    t = db_worker_app.tasks_by_name
    canvas = [t["add"].s(i, i) for i in range(150)] + [t["fail"].s(7)]
    ours = group(canvas).apply_async()
    theirs = celery_group([s.clone() for s in canvas]).apply_async()
    values = ours.get(timeout=TIMEOUT, propagate=False)
    assert read_counts == {"celery": 0, "bulk": read_counts["bulk"]}
    assert read_counts["bulk"] >= 1
    expected = theirs.get(timeout=TIMEOUT, propagate=False)
    assert [repr(v) for v in values] == [repr(v) for v in expected]
    assert values[:150] == [i + i for i in range(150)]
    assert ours.completed_count() == theirs.completed_count() == 150
    assert ours.failed() and theirs.failed()
    for mine, celerys in zip(ours.results, theirs.results):
        # The same fields, read back from rows the worker wrote (result_extended).
        assert set(mine._cache) == set(celerys._cache)
        assert mine._cache["name"] == celerys._cache["name"]
        assert mine._cache["args"] == celerys._cache["args"]


def test_chord_on_the_database_backend_gives_the_sum(db_worker_app):
    t = db_worker_app.tasks_by_name
    res = chord([t["add"].s(i, i) for i in range(60)], t["tsum"].s()).apply_async()
    assert res.get(timeout=TIMEOUT) == sum(i + i for i in range(60))


def test_installed_chord_unlock_reads_the_header_in_bulk(db_worker_app, read_counts):
    """The worker's chord_unlock (this backend has no native chords) polls
    and joins the header through turbogroup's GroupResult once installed,
    even on an app finalized before install(); the client's get() of the
    body checks the header for failures in bulk at each poll."""
    t = db_worker_app.tasks_by_name
    assert db_worker_app.finalized
    turbogroup.install()
    try:
        res = celery.chord([t["add"].s(i, i) for i in range(60)], t["tsum"].s()).apply_async()
        assert res.get(timeout=TIMEOUT) == sum(i + i for i in range(60))
    finally:
        turbogroup.uninstall()
    # With Celery, chord_unlock reads each header result at least twice
    # (its last ready(), then the join) and the client's get() once per
    # poll: 120 one-result reads and more. Here the header is read in bulk;
    # the one-result reads left are the client's polls of the body.
    assert read_counts["bulk"] >= 2
    assert read_counts["celery"] < 30, read_counts

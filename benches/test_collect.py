"""Collection head to head: Celery's GroupResult vs turbogroup's on the same
N results stored in Redis (groups ``collect-get-<N>``,
``collect-completed_count-<N>``).

    python -m pytest benches/test_collect.py -p pytest_benchmark --benchmark-only
TURBOGROUP_BENCH_N=1000,10000,100000 widens the sizes.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis
from celery import Celery, states
from celery.result import GroupResult as CeleryGroupResult

from turbogroup import GroupResult as TurboGroupResult

SIZES = [int(n) for n in os.environ.get("TURBOGROUP_BENCH_N", "1000,10000").split(",")]
IMPLS = {"celery": CeleryGroupResult, "turbogroup": TurboGroupResult}
REDIS_DB = 10


@pytest.fixture(scope="module")
def stored():
    """An app and, per N, the ids of N stored successful results."""
    prefix = f"turbogroup-bench-{uuid.uuid4().hex[:8]}:"
    app = Celery("turbogroup-bench-collect", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend=f"redis://127.0.0.1:6379/{REDIS_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    backend = app.backend
    ids = {}
    for n in SIZES:
        ids[n] = [str(uuid.uuid4()) for _ in range(n)]
        pipe = backend.client.pipeline(transaction=False)
        for i, task_id in enumerate(ids[n]):
            meta = backend._get_result_meta(i, states.SUCCESS, None, None)
            meta["task_id"] = task_id
            pipe.set(backend.get_key_for_task(task_id), backend.encode(meta))
        pipe.execute()
    yield app, ids
    client = redis.Redis(db=REDIS_DB)
    for key in client.scan_iter(match=f"{prefix}*", count=5000):
        client.delete(key)
    client.close()
    app.close()


def fresh(app, impl, task_ids):
    return impl(str(uuid.uuid4()), [app.AsyncResult(i) for i in task_ids], app=app)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_get(benchmark, stored, impl, n):
    app, ids = stored
    benchmark.group = f"collect-get-{n}"
    benchmark.extra_info.update(impl=impl, n=n)
    values = benchmark.pedantic(
        lambda res: res.get(timeout=600),
        setup=lambda: ((fresh(app, IMPLS[impl], ids[n]),), {}),
        rounds=3,
        iterations=1,
    )
    assert values == list(range(n))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_completed_count(benchmark, stored, impl, n):
    app, ids = stored
    benchmark.group = f"collect-completed_count-{n}"
    benchmark.extra_info.update(impl=impl, n=n)
    count = benchmark.pedantic(
        lambda res: res.completed_count(),
        setup=lambda: ((fresh(app, IMPLS[impl], ids[n]),), {}),
        rounds=3,
        iterations=1,
    )
    assert count == n

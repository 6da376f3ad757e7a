"""A large group through a real worker on Redis: every result collected, and
no pub/sub subscription per task on the client at any point (Celery's
collection subscribes to one channel per task; at 100k Redis drops that
connection when its output buffer overflows).

TURBOGROUP_E2E_LARGE sets the size (default 20,000 for the test run; the
closing notes quote 100,000).
"""

from __future__ import annotations

import os
import threading

import pytest

from turbogroup import group

pytestmark = [pytest.mark.worker, pytest.mark.redis]
N = int(os.environ.get("TURBOGROUP_E2E_LARGE", "20000"))


def task_channels(redis_client, worker_app, ids):
    """How many of the tasks' result channels anybody is subscribed to."""
    key_for = worker_app.backend.get_key_for_task
    counts = redis_client.pubsub_numsub(*(key_for(i) for i in ids[:2000]))
    return sum(n for _, n in counts)


def test_large_group_collects_every_result_without_per_task_subscriptions(
    tasks, worker_app, redis_client
):
    add = tasks["add"]
    res = group(add.s(i, 1) for i in range(N)).apply_async()
    ids = [r.id for r in res.results]
    assert len(set(ids)) == N
    assert task_channels(redis_client, worker_app, ids) == 0

    progress = []
    seen_subscriptions = []

    def on_progress(done, total):
        progress.append(done)
        if len(progress) % 10 == 1:
            seen_subscriptions.append(task_channels(redis_client, worker_app, ids))

    values = res.get(timeout=600, on_progress=on_progress)
    assert values == [i + 1 for i in range(N)]
    assert progress[-1] == N
    assert seen_subscriptions and set(seen_subscriptions) == {0}
    assert res.completed_count() == N and res.ready() and res.successful()
    assert not worker_app.backend.result_consumer.subscribed_to
    res.forget()


def test_collection_from_another_thread_sees_the_same_results(tasks):
    """GroupResult is shared across threads in real apps (e.g. a web
    handler dispatching, a poller collecting)."""
    add = tasks["add"]
    res = group(add.s(i, 2) for i in range(500)).apply_async()
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", res.get(timeout=120)))
    t.start()
    t.join(150)
    assert out["v"] == [i + 2 for i in range(500)]

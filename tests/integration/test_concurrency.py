"""Eight threads dispatch a 10k-task group each through one app at the same
moment, then eight threads collect all of them at the same moment.

The dispatches share the app's producer pool, router and queues, and the
process-wide garbage-collector pause; what a dispatch keeps per call
(fast-path batch, pending messages, suppressed result subscriptions) must
stay with its own group. So every message in the queue must belong to exactly one
GroupResult and carry that group's id and its own index. Results are then
stored the way a worker stores them, and each GroupResult's ``get`` must
return its values in order and fire its ready barrier exactly once, after
every child is ready. No worker runs: the queue is read back directly.
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery, states

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from turbogroup import GroupResult, group

pytestmark = pytest.mark.redis

THREADS = 8
N = 10_000
TIMEOUT = 60
LRANGE_CHUNK = 10_000
WRITE_CHUNK = 5_000


def value_for(thread: int, index: int) -> int:
    """Distinct per group and per child, so a value landing in the wrong
    group or slot is caught."""
    return thread * 1_000_000 + index


def _in_threads(target: Callable[[int], Any]) -> list[Any]:
    """``target(k)`` for k in 0..THREADS-1, each on its own thread; the
    first exception is re-raised here."""
    out: list[Any] = [None] * THREADS
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            out[k] = target(k)
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    # daemon: a hung thread fails the test instead of hanging pytest's exit
    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return out


def _delete_matching(client: redis.Redis, pattern: str) -> None:
    keys = list(client.scan_iter(match=pattern, count=10_000))
    for start in range(0, len(keys), WRITE_CHUNK):
        client.delete(*keys[start : start + WRITE_CHUNK])


@pytest.fixture
def env(redis_url):
    prefix = f"turbogroup-it-conc-{uuid.uuid4().hex[:10]}:"
    queue = prefix.rstrip(":")
    app = Celery("turbogroup-concurrency", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        broker_transport_options={"global_keyprefix": prefix},
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
    )

    @app.task(shared=False)
    def work(i):
        return i

    broker = redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")
    backend = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    try:
        yield app, work, broker, f"{prefix}{queue}"
    finally:
        app.backend.result_consumer.stop()
        app.close()
        # kombu prefixes its binding keys too (``<prefix>_kombu.binding.<q>``)
        _delete_matching(broker, f"{prefix}*")
        _delete_matching(backend, f"{prefix}*")
        broker.close()
        backend.close()


def read_queue(client: redis.Redis, key: str) -> list[dict[str, Any]]:
    """Every message in the queue, decoded: its headers plus the body's args."""
    out = []
    total = client.llen(key)
    for start in range(0, total, LRANGE_CHUNK):
        for raw in client.lrange(key, start, start + LRANGE_CHUNK - 1):
            envelope = json.loads(raw)
            args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            out.append({**envelope["headers"], "args": args})
    return out


def store_results(app: Celery, groups: list[GroupResult]) -> None:
    """SUCCESS metas as the worker's ``backend.store_result`` writes them
    (``_get_result_meta`` plus ``group_id`` and ``task_id``, then SET with
    expiry and PUBLISH), pipelined: one ``store_result`` per task takes
    minutes at this size. One meta template serves all tasks, since
    ``_get_result_meta`` costs ~80 µs (its ``app.now()``)."""
    backend = app.backend
    template = backend._get_result_meta(
        result=None, state=states.SUCCESS, traceback=None, request=None
    )
    pipe = backend.client.pipeline(transaction=False)
    queued = 0
    for k, res in enumerate(groups):
        for i, child in enumerate(res.results):
            meta = {**template, "result": value_for(k, i), "group_id": res.id}
            meta["task_id"] = child.id
            key = backend.get_key_for_task(child.id)
            value = backend.encode(meta)
            pipe.set(key, value, ex=backend.expires)
            pipe.publish(key, value)
            queued += 1
            if queued % WRITE_CHUNK == 0:
                pipe.execute()
    pipe.execute()


def test_eight_threads_dispatch_and_collect_10k_groups_through_one_app(env):
    app, work, broker, queue_key = env
    timings: dict[str, float] = {}

    # Signatures are built before the barrier so the dispatches, not the
    # group construction, overlap. Half the groups are lists, half lazy
    # generators: only a sized group pauses the garbage collector.
    signatures = [[work.s(i) for i in range(N)] for _ in range(THREADS)]
    canvases = [group(sigs if k % 2 else iter(sigs)) for k, sigs in enumerate(signatures)]
    start_together = threading.Barrier(THREADS)

    def dispatch(k: int) -> GroupResult:
        start_together.wait(timeout=TIMEOUT)
        return canvases[k].apply_async()

    started = time.monotonic()
    groups = _in_threads(dispatch)
    timings["dispatch"] = time.monotonic() - started

    for res in groups:
        assert isinstance(res, GroupResult)
        assert len(res.results) == N
    assert len({res.id for res in groups}) == THREADS

    started = time.monotonic()
    messages = read_queue(broker, queue_key)
    timings["read queue"] = time.monotonic() - started
    assert len(messages) == THREADS * N

    group_of = {child.id: res.id for res in groups for child in res.results}
    assert len(group_of) == THREADS * N, "a task id was given to two children"
    seen_ids = collections.Counter(m["id"] for m in messages)
    duplicated = [tid for tid, count in seen_ids.items() if count != 1]
    assert not duplicated, f"{len(duplicated)} task ids queued more than once"
    assert set(seen_ids) == set(group_of)

    indexes: dict[str, list[int]] = collections.defaultdict(list)
    for m in messages:
        assert m["group"] == group_of[m["id"]], m["id"]
        assert m["args"] == [m["group_index"]], m["id"]
        indexes[m["group"]].append(m["group_index"])
    for res in groups:
        assert sorted(indexes[res.id]) == list(range(N)), res.id
    by_id = {m["id"]: m for m in messages}
    for res in groups:
        assert [by_id[c.id]["group_index"] for c in res.results] == list(range(N))
    # ~100 MB of decoded messages, not needed while collecting
    del messages, by_id, seen_ids, indexes

    started = time.monotonic()
    store_results(app, groups)
    timings["store"] = time.monotonic() - started

    # The ready barrier fires once, and only when every child is cached as
    # ready: a child counted twice would fire it early.
    fired: list[list[int]] = [[] for _ in range(THREADS)]
    for k, res in enumerate(groups):
        assert not res._on_full.ready
        assert res._on_full.size == N

        def on_full(*_args: Any, k: int = k, res: GroupResult = res) -> None:
            fired[k].append(sum(child._cache is not None for child in res.results))

        res._on_full.then(on_full)

    start_together = threading.Barrier(THREADS)

    def collect(k: int) -> list[list[Any]]:
        # Every thread collects every group, starting with its own: the
        # groups are collected in parallel, and a thread moving on may meet
        # one that another thread is still collecting (or has cached).
        start_together.wait(timeout=TIMEOUT)
        order = [(k + j) % THREADS for j in range(THREADS)]
        got = {g: groups[g].get(timeout=TIMEOUT) for g in order}
        return [got[g] for g in range(THREADS)]

    started = time.monotonic()
    collected = _in_threads(collect)
    timings["collect"] = time.monotonic() - started

    for k, res in enumerate(groups):
        want = [value_for(k, i) for i in range(N)]
        for thread, values in enumerate(collected):
            assert values[k] == want, f"group {k} as collected by thread {thread}"
        assert fired[k] == [N], k
        assert res._on_full.ready and res._on_full.p.ready
        assert res.completed_count() == N
        assert res.ready() and res.successful()
    print("timings (s):", {name: round(t, 2) for name, t in timings.items()})

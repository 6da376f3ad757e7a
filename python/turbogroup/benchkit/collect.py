"""Collection of N results already stored on the Redis result backend:
``GroupResult.get()`` and ``completed_count()``, Celery's ``GroupResult``
vs turbogroup's, each round on fresh result objects (nothing cached)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from celery import Celery, states
from celery.result import GroupResult as CeleryGroupResult

from turbogroup.benchkit.timing import Progress, Timing, run_rounds, time_cap
from turbogroup.benchkit.transports import delete_redis_keys
from turbogroup.result import GroupResult as TurboGroupResult

IMPLS: dict[str, type] = {"celery": CeleryGroupResult, "turbogroup": TurboGroupResult}
OPERATIONS = ("get", "completed_count")
STORE_CHUNK = 10_000


class StoredResults:
    """An app whose Redis result backend keys all start with the run's tag,
    so cleanup is one prefix."""

    def __init__(self, redis_url: str, tag: str) -> None:
        self.redis_url, self.prefix = redis_url, f"{tag}-collect:"
        self.app = Celery("turbogroup-bench-collect", set_as_current=False)
        self.app.conf.update(
            broker_url="memory://",
            result_backend=redis_url,
            result_backend_transport_options={"global_keyprefix": self.prefix},
        )

    def store(self, n: int) -> list[str]:
        """N successful results (values 0..N-1), written as a worker would."""
        backend = self.app.backend
        ids = [str(uuid.uuid4()) for _ in range(n)]
        for start in range(0, n, STORE_CHUNK):
            pipe = backend.client.pipeline(transaction=False)
            for i in range(start, min(start + STORE_CHUNK, n)):
                meta = backend._get_result_meta(i, states.SUCCESS, None, None)
                meta["task_id"] = ids[i]
                pipe.set(backend.get_key_for_task(ids[i]), backend.encode(meta))
            pipe.execute()
        return ids

    def fresh(self, impl: str, ids: list[str]) -> Any:
        results = [self.app.AsyncResult(i) for i in ids]
        return IMPLS[impl](str(uuid.uuid4()), results, app=self.app)

    def close(self) -> None:
        self.app.close()
        delete_redis_keys(self.redis_url, f"{self.prefix}*")


def collect_once(
    stored: StoredResults, impl: str, operation: str, ids: list[str], max_seconds: float | None
) -> float:
    res = stored.fresh(impl, ids)
    n = len(ids)
    with time_cap(max_seconds):
        t0 = time.perf_counter()
        value = res.get(timeout=max_seconds) if operation == "get" else res.completed_count()
        elapsed = time.perf_counter() - t0
    expected = list(range(n)) if operation == "get" else n
    if value != expected:
        raise AssertionError(f"{impl} {operation} returned a wrong value for N={n}")
    return elapsed


def run_collect(
    stored: StoredResults,
    impl: str,
    operation: str,
    ids: list[str],
    rounds: int,
    max_seconds: float | None,
    progress: Progress,
) -> Timing:
    return run_rounds(
        len(ids),
        rounds,
        max_seconds,
        lambda: (collect_once(stored, impl, operation, ids, max_seconds), None),
        f"collect N={len(ids)} {impl} {operation}",
        progress,
    )

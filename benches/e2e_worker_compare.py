"""A large group run by one real worker on Redis (broker and result
backend), dispatched and collected by turbogroup and then by Celery.

    python -m benches.e2e_worker_compare 100000

Prints dispatch and dispatch+collect times and whether every result came
back. Afterwards, look for "scheduled to be closed ASAP for overcoming of
output buffer limits" in the Redis server log: Celery's collection
subscribes to one channel per task and Redis drops that connection when
its output buffer overflows. turbogroup subscribes to none.
"""

from __future__ import annotations

import argparse
import time
import uuid

import celery.contrib.testing.tasks  # noqa: F401 - the worker's ping task
import redis
from celery.canvas import group as celery_group
from celery.contrib.testing.worker import start_worker

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.e2e.conftest import _delete_prefixed, make_redis_worker_app
from turbogroup import group as turbo_group


def run(n: int, redis_url: str) -> None:
    prefix = f"tg-cmp-{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    app = make_redis_worker_app("tg-cmp", redis_url, prefix, client)
    add = app.tasks_by_name["add"]
    try:
        with start_worker(app, pool="threads", concurrency=4, loglevel="WARNING"):
            for name, impl in (("turbogroup", turbo_group), ("celery", celery_group)):
                started = time.perf_counter()
                res = impl(add.s(i, 1) for i in range(n)).apply_async()
                dispatched = time.perf_counter()
                values = res.get(timeout=1800)
                done = time.perf_counter()
                ok = values == [i + 1 for i in range(n)]
                print(
                    f"{name}: dispatch {dispatched - started:.1f} s, "
                    f"dispatch+collect {done - started:.1f} s, all {n} correct: {ok}",
                    flush=True,
                )
    finally:
        app.close()
        client.close()
        _delete_prefixed(f"{redis_url}/{REDIS_BROKER_DB}", prefix)
        _delete_prefixed(f"{redis_url}/{REDIS_BACKEND_DB}", prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=100_000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    run(args.n, args.redis_url)


if __name__ == "__main__":
    main()

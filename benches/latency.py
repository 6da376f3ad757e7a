"""How late ``GroupResult.get()`` returns after a small group's last result
is stored, with a real worker on Redis (broker and result backend).

    python -m benches.latency [--n 10] [--rounds 5]

Each task sleeps a little (so results arrive while ``get()`` waits), and
the worker stores each result with its ``date_done``. The latency of a
round is the time ``get()`` returned minus the latest ``date_done`` of the
group (same machine, same clock). Celery's ``group`` and turbogroup's run
alternately on the same worker; prints the median and the worst per side.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

import celery.contrib.testing.tasks  # noqa: F401 - the worker's ping task
import redis
from celery.canvas import group as celery_group
from celery.contrib.testing.worker import start_worker

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.e2e.conftest import _delete_prefixed
from turbogroup import group as turbo_group


def make_app(redis_url: str, prefix: str) -> Any:
    from celery import Celery

    app = Celery("tg-latency", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        broker_transport_options={"global_keyprefix": prefix},
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
        result_extended=True,
        worker_hijack_root_logger=False,
    )

    @app.task(name="nap", shared=False)
    def nap(i: int, seconds: float) -> int:
        time.sleep(seconds)
        return i

    return app


def last_stored(res: Any) -> float:
    """The latest ``date_done`` of the group's results, as a timestamp."""
    done = [r.date_done for r in res.results]
    return max(
        d if isinstance(d, datetime) else datetime.fromisoformat(d) for d in done
    ).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    opts = parser.parse_args()
    prefix = f"tg-latency-{uuid.uuid4().hex[:8]}:"
    app = make_app(opts.redis_url, prefix)
    nap = app.tasks["nap"]
    late: dict[str, list[float]] = {"celery": [], "turbogroup": []}
    try:
        with start_worker(app, pool="threads", concurrency=4, loglevel="WARNING"):
            for k in range(opts.rounds):
                for name, impl in (("celery", celery_group), ("turbogroup", turbo_group)):
                    # 0.05-0.35 s per task: the last result lands at a
                    # moment unrelated to any poll schedule
                    seconds = [0.05 + ((k * 7 + i * 13) % 31) / 100 for i in range(opts.n)]
                    res = impl(nap.s(i, s) for i, s in enumerate(seconds)).apply_async()
                    assert res.get(timeout=60) == list(range(opts.n))
                    returned = time.time()
                    late[name].append(returned - last_stored(res))
    finally:
        app.close()
        _delete_prefixed(f"{opts.redis_url}/{REDIS_BROKER_DB}", prefix)
        _delete_prefixed(f"{opts.redis_url}/{REDIS_BACKEND_DB}", prefix)
        redis.Redis.from_url(opts.redis_url).close()
    print(f"get() of a group of {opts.n}: returned after its last result was stored, ms")
    print(f"{'':12}{'median':>10}{'worst':>10}   rounds")
    for name, values in late.items():
        ms = [v * 1000 for v in values]
        rounds = ", ".join(f"{v:.1f}" for v in ms)
        print(f"{name:12}{statistics.median(ms):>10.1f}{max(ms):>10.1f}   {rounds}")


if __name__ == "__main__":
    main()

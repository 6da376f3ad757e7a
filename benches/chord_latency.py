"""A chord end to end with a real worker (prefork, 2 processes; Redis
broker and backend): when the body's result is stored, as a plain Redis
client watching its key sees it, and when ``res.get()`` returns in the
dispatching process. turbogroup (``install()``, unchanged user code) and
then Celery, in the same run.

    python -m benches.chord_latency 5000 10000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid

import celery
import redis

import turbogroup


def watch(client: redis.Redis, key: str, started: float, out: list[float]) -> None:
    while not client.exists(key):
        time.sleep(0.005)
    out.append(time.perf_counter() - started)


def run_one(n: int, prefix: str) -> tuple[float, float, float]:
    from benches.chord_app import add, app, tsum

    client = redis.Redis.from_url(f"{os.environ['TG_CHORD_REDIS']}/12")
    canvas = celery.chord([add.s(i, i) for i in range(n)], tsum.s())
    stored: list[float] = []
    started = time.perf_counter()
    res = canvas.apply_async()
    dispatched = time.perf_counter() - started
    watcher = threading.Thread(
        target=watch, args=(client, f"{prefix}celery-task-meta-{res.id}", started, stored)
    )
    watcher.start()
    value = res.get(timeout=1800)
    returned = time.perf_counter() - started
    watcher.join()
    assert value == sum(2 * i for i in range(n)), value
    client.close()
    app.close()
    return dispatched, stored[0], returned


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    prefix = f"tg-chord-{uuid.uuid4().hex[:8]}:"
    os.environ.update(TG_CHORD_REDIS=args.redis_url, TG_CHORD_PREFIX=prefix)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benches.chord_app", "worker",
         "-P", "prefork", "-c", "2", "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
    )  # fmt: skip
    try:
        time.sleep(5)  # the worker connects
        print(f"{'':12}{'N':>7}{'dispatch':>10}{'stored':>10}{'get()':>10}{'get/stored':>12}")
        for n in args.sizes:
            for name in ("turbogroup", "celery"):
                (turbogroup.install if name == "turbogroup" else turbogroup.uninstall)()
                # A fresh process per side would be cleaner; the app's
                # result consumer is reset by closing the app each time.
                d, s, g = run_one(n, prefix)
                print(f"{name:12}{n:>7}{d:>9.2f}s{s:>9.2f}s{g:>9.2f}s{g / s:>11.2f}x", flush=True)
    finally:
        worker.terminate()
        worker.wait(60)
        for db in (10, 12):
            client = redis.Redis.from_url(f"{args.redis_url}/{db}")
            keys = list(client.scan_iter(match=f"*{prefix}*", count=5000))
            if keys:
                client.delete(*keys)
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

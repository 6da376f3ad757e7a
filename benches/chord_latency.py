"""A chord end to end with a real worker (prefork, 2 processes; Redis
broker; Redis result backend, or Celery's database backend with
``--database-url``): when the body's result is stored, as a plain client
watching its key or row sees it, and when ``res.get()`` returns in the
dispatching process. turbogroup (``install()`` in the client and in the
worker, unchanged user code) and then Celery, in the same run, each side
with a worker of its own.

    python -m benches.chord_latency 5000 10000
    python -m benches.chord_latency 2000 10000 --database-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable

import celery
import redis

import turbogroup


def watch(stored: Callable[[], bool], started: float, out: list[float]) -> None:
    while not stored():
        time.sleep(0.005)
    out.append(time.perf_counter() - started)


def body_stored(task_id: str) -> tuple[Callable[[], bool], Callable[[], None]]:
    """Whether the body's result is stored, read as a plain client reads
    it (no Celery); and how to close that client."""
    from benches.chord_app import DATABASE, PREFIX, REDIS, TABLES

    if DATABASE:
        import sqlalchemy

        engine = sqlalchemy.create_engine(DATABASE)
        query = sqlalchemy.text(
            f"SELECT 1 FROM {TABLES['task']} WHERE task_id = :id AND status = 'SUCCESS'"
        )

        def in_table() -> bool:
            with engine.connect() as conn:
                try:
                    return conn.execute(query, {"id": task_id}).first() is not None
                except sqlalchemy.exc.ProgrammingError:  # the table is not made yet
                    return False

        return in_table, engine.dispose
    client = redis.Redis.from_url(f"{REDIS}/12")
    key = f"{PREFIX}celery-task-meta-{task_id}"
    return (lambda: bool(client.exists(key))), client.close


def run_one(n: int) -> tuple[float, float, float]:
    from benches.chord_app import add, app, tsum

    canvas = celery.chord([add.s(i, i) for i in range(n)], tsum.s())
    stored: list[float] = []
    started = time.perf_counter()
    res = canvas.apply_async()
    dispatched = time.perf_counter() - started
    is_stored, close = body_stored(res.id)
    watcher = threading.Thread(target=watch, args=(is_stored, started, stored))
    watcher.start()
    value = res.get(timeout=3600)
    returned = time.perf_counter() - started
    watcher.join()
    close()
    assert value == sum(2 * i for i in range(n)), value
    app.close()
    return dispatched, stored[0], returned


def start_worker(install: bool) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TG_CHORD_INSTALL="1" if install else "")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benches.chord_app", "worker",
         "-P", "prefork", "-c", "2", "--loglevel", "WARNING", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        env=env,
    )  # fmt: skip
    time.sleep(5)  # the worker connects
    return worker


def clean(redis_url: str, prefix: str, database_url: str) -> None:
    for db in (10, 12):
        client = redis.Redis.from_url(f"{redis_url}/{db}")
        keys = list(client.scan_iter(match=f"*{prefix}*", count=5000))
        if keys:
            client.delete(*keys)
        client.close()
    if database_url:
        import sqlalchemy

        from benches.chord_app import TABLES

        engine = sqlalchemy.create_engine(database_url)
        with engine.begin() as conn:
            for table in TABLES.values():
                conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}"'))
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="+", type=int)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--database-url", default="", help="results in Celery's database backend")
    args = parser.parse_args()
    prefix = f"tg-chord-{uuid.uuid4().hex[:8]}:"
    os.environ.update(
        TG_CHORD_REDIS=args.redis_url, TG_CHORD_PREFIX=prefix, TG_CHORD_DATABASE=args.database_url
    )
    backend = "database" if args.database_url else "redis"
    header = f"{'':12}{'N':>7}{'dispatch':>10}{'stored':>10}{'get()':>10}{'get/stored':>12}"
    print(f"{header}  {backend}")
    try:
        for name in ("turbogroup", "celery"):
            install = name == "turbogroup"
            (turbogroup.install if install else turbogroup.uninstall)()
            worker = start_worker(install)
            try:
                for n in args.sizes:
                    d, s, g = run_one(n)
                    print(
                        f"{name:12}{n:>7}{d:>9.2f}s{s:>9.2f}s{g:>9.2f}s{g / s:>11.2f}x", flush=True
                    )
            finally:
                worker.terminate()
                worker.wait(60)
    finally:
        clean(args.redis_url, prefix, args.database_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

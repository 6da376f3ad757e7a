"""Dispatch head to head: celery.canvas.group vs turbogroup.group, same run,
same broker (pytest-benchmark groups ``dispatch-<transport>-<N>``).

Opt-in, not part of the test run:
    python -m pytest benches -p pytest_benchmark --benchmark-only
TURBOGROUP_BENCH_N=1000,10000,100000 widens the sizes.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest
import redis
from celery import Celery
from celery.canvas import group as celery_group

from turbogroup import group as turbo_group

SIZES = [int(n) for n in os.environ.get("TURBOGROUP_BENCH_N", "1000,10000").split(",")]
IMPLS = {"celery": celery_group, "turbogroup": turbo_group}
REDIS_DB = 10


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


TRANSPORTS = {
    "memory": "memory://",
    "redis": f"redis://127.0.0.1:6379/{REDIS_DB}",
    "amqp": "amqp://guest:guest@127.0.0.1:5672//",
}


@pytest.fixture(params=list(TRANSPORTS))
def bench_app(request):
    transport = request.param
    port = {"redis": 6379, "amqp": 5672}.get(transport)
    if port and not reachable(port):
        pytest.skip(f"{transport} is not running on 127.0.0.1:{port}")
    queue = f"turbogroup-bench-{uuid.uuid4().hex[:8]}"
    app = Celery("turbogroup-bench", set_as_current=False)
    app.conf.update(broker_url=TRANSPORTS[transport], task_default_queue=queue)

    @app.task(shared=False)
    def add(x, y):
        return x + y

    app.bench_add, app.bench_transport, app.bench_queue = add, transport, queue
    yield app
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    if transport == "redis":
        client = redis.Redis(db=REDIS_DB)
        for key in client.scan_iter(match=f"*{queue}*"):
            client.delete(key)
        client.close()
    app.close()


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_dispatch(benchmark, bench_app, impl, n):
    add = bench_app.bench_add
    benchmark.group = f"dispatch-{bench_app.bench_transport}-{n}"
    benchmark.extra_info.update(impl=impl, n=n)

    def setup():
        with bench_app.connection_for_write() as conn:
            queue = bench_app.amqp.queues[bench_app.bench_queue].bind(conn.default_channel)
            queue.declare()
            queue.purge()
        return (IMPLS[impl]([add.s(i, i) for i in range(n)], app=bench_app),), {}

    benchmark.pedantic(lambda g: g.apply_async(), setup=setup, rounds=3, iterations=1)

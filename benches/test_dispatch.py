"""Dispatch head to head: celery.canvas.group vs turbogroup.group, same run,
same broker (pytest-benchmark groups ``dispatch-<transport>-<N>``).

On RabbitMQ the same group also times the broker's limit: a raw py-amqp
publisher of same-size messages writing continuously with publisher
confirms, draining acks as they arrive.

Opt-in, not part of the test run:
    python -m pytest benches -p pytest_benchmark --benchmark-only
TURBOGROUP_BENCH_N=1000,10000,100000 widens the sizes.
"""

from __future__ import annotations

import os
import socket
import uuid

import amqp
import pytest
import redis
from celery import Celery
from celery.canvas import group as celery_group
from kombu.serialization import dumps

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
        if transport == "amqp":
            # Celery declared an exchange named after the queue, too
            conn.default_channel.exchange_delete(queue)
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


def celery_message(app: Celery, i: int) -> tuple[dict, dict, bytes]:
    """Headers, properties and JSON body of the message Celery sends for
    ``add.s(i, i)``: the raw publisher sends messages of the same size."""
    headers, properties, body, _ = app.amqp.as_task_v2(
        str(uuid.uuid4()), app.bench_add.name, args=(i, i), kwargs={}
    )
    _, _, payload = dumps(body, serializer="json")
    return headers, properties, payload


@pytest.mark.parametrize("n", SIZES)
def test_dispatch_raw_confirmed_pyamqp(benchmark, bench_app, n):
    if bench_app.bench_transport != "amqp":
        pytest.skip("the raw confirmed publisher is the RabbitMQ reference")
    benchmark.group = f"dispatch-amqp-{n}"
    benchmark.extra_info.update(impl="raw-pyamqp-confirmed", n=n)
    queue = bench_app.bench_queue
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    channel = conn.channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    channel.confirm_select()
    acked: list[int] = []
    channel.events["basic_ack"].add(lambda tag, multiple: acked.append(tag))
    sent = [0]

    def setup():
        channel.queue_purge(queue)
        messages = []
        for i in range(n):
            headers, properties, payload = celery_message(bench_app, i)
            messages.append(
                amqp.Message(
                    payload,
                    application_headers=headers,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    **properties,
                )
            )
        return (messages,), {}

    def publish_all_then_drain(messages):
        for message in messages:
            channel.basic_publish(message, exchange="", routing_key=queue)
        sent[0] += len(messages)
        # acks may be `multiple`: the last tag acked covers everything before
        while not acked or max(acked) < sent[0]:
            conn.drain_events(timeout=60)

    benchmark.pedantic(publish_all_then_drain, setup=setup, rounds=3, iterations=1)
    assert channel.queue_declare(queue, passive=True).message_count == n
    channel.close()
    conn.close()

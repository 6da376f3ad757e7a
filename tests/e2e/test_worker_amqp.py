"""What turbogroup publishes on RabbitMQ (confirmed, on its own channel), a
real Celery worker consumes and runs: group results, a chord, link_error.

Broker: RabbitMQ, a queue of our own (deleted afterwards). Results: Redis
db 12 under a unique ``global_keyprefix``, deleted afterwards.
"""

from __future__ import annotations

import time
import uuid

import celery.contrib.testing.tasks  # noqa: F401 - registers the ping task start_worker uses
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from tests.conftest import REDIS_BACKEND_DB
from tests.e2e.conftest import _delete_prefixed
from turbogroup import group
from turbogroup.publish.amqp import uses_pyamqp

pytestmark = [pytest.mark.worker, pytest.mark.amqp]
TIMEOUT = 60


@pytest.fixture(scope="module")
def amqp_worker_app(amqp_url, redis_url, redis_client):
    prefix = f"turbogroup-e2e-amqp-{uuid.uuid4().hex[:10]}:"
    queue = prefix.rstrip(":")
    app = Celery("turbogroup-e2e-amqp", set_as_current=False)
    app.conf.update(
        broker_url=amqp_url,
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
        result_expires=3600,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        # no pidbox exchange/queues on the shared broker
        worker_enable_remote_control=False,
    )

    @app.task(shared=False)
    def add(x, y):
        return x + y

    @app.task(shared=False)
    def tsum(values):
        return sum(values)

    @app.task(shared=False)
    def fail(x):
        raise ValueError(f"failing on purpose: {x}")

    @app.task(shared=False)
    def on_error(request, exc, traceback):
        redis_client.rpush(f"{prefix}errbacks", request.id)

    app.tasks_by_name = {"add": add, "tsum": tsum, "fail": fail, "on_error": on_error}
    app.key_prefix = prefix
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=True):
        yield app
    app.close()
    with Connection(amqp_url) as conn:
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
        channel.close()
    _delete_prefixed(f"{redis_url}/{REDIS_BACKEND_DB}", prefix)


@pytest.fixture
def tasks(amqp_worker_app):
    return amqp_worker_app.tasks_by_name


def test_the_dispatch_takes_the_confirmed_amqp_path(amqp_worker_app):
    with amqp_worker_app.producer_or_acquire() as producer:
        assert uses_pyamqp(producer.connection)


def test_group_of_2000_tasks_returns_results_in_order(tasks):
    add = tasks["add"]
    res = group(add.s(i, i) for i in range(2000)).apply_async()
    assert res.get(timeout=TIMEOUT) == [i + i for i in range(2000)]
    assert res.completed_count() == 2000


def test_group_or_tsum_chord_gives_the_sum(tasks):
    add, tsum = tasks["add"], tasks["tsum"]
    res = (group(add.s(i, i) for i in range(1500)) | tsum.s())()
    assert res.get(timeout=TIMEOUT) == sum(i + i for i in range(1500))


def test_link_error_callback_runs_once_for_each_failing_child(tasks, amqp_worker_app, redis_client):
    add, fail, on_error = tasks["add"], tasks["fail"], tasks["on_error"]
    key = f"{amqp_worker_app.key_prefix}errbacks"
    redis_client.delete(key)
    g = group(fail.s(1), add.s(1, 1), fail.s(2), fail.s(3))
    g.link_error(on_error.s())
    res = g.apply_async()
    # join_native raises the first failure to *arrive*: any of the three
    with pytest.raises(ValueError, match="failing on purpose: [123]"):
        res.get(timeout=TIMEOUT)
    failing = {res.results[i].id for i in (0, 2, 3)}
    deadline = time.monotonic() + TIMEOUT
    while redis_client.llen(key) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a duplicate errback would land by now
    called = [x.decode() for x in redis_client.lrange(key, 0, -1)]
    assert sorted(called) == sorted(failing)
    assert res.results[1].get(timeout=TIMEOUT) == 2
    redis_client.delete(key)

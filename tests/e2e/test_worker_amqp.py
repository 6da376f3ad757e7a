"""What turbogroup publishes on RabbitMQ (confirmed, on its own channel), a
real Celery worker consumes and runs: group results, a chord, link_error.

Broker: RabbitMQ, a queue of our own (deleted afterwards). Results: Redis
db 12 under a unique ``global_keyprefix``, deleted afterwards.
"""

from __future__ import annotations

import uuid

import celery.contrib.testing.tasks  # noqa: F401 - registers the ping task start_worker uses
import pytest
from celery import _state
from celery.canvas import group as celery_group
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from tests.conftest import REDIS_BACKEND_DB
from tests.e2e.conftest import (
    _delete_prefixed,
    assert_link_error_runs_once_per_failure,
    make_worker_app,
)
from tests.e2e.test_worker_tracing import spans_by_task
from tests.otel import instrumented
from turbogroup import group
from turbogroup.publish.amqp import uses_pyamqp

pytestmark = [pytest.mark.worker, pytest.mark.amqp]
TIMEOUT = 60


@pytest.fixture(scope="module")
def amqp_worker_app(amqp_url, redis_url, redis_client):
    prefix = f"turbogroup-e2e-amqp-{uuid.uuid4().hex[:10]}:"
    queue = prefix.rstrip(":")
    app = make_worker_app(
        "turbogroup-e2e-amqp",
        prefix,
        redis_client,
        broker_url=amqp_url,
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=queue,
        # no pidbox exchange/queues on the shared broker
        worker_enable_remote_control=False,
    )
    # The consumer may sit in a poll of the broker connection for some
    # seconds before it sees the stop (Celery's start_worker waits 10 s by
    # default, which a short module can miss with Celery's group too).
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=True, shutdown_timeout=60
    ):
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
    assert_link_error_runs_once_per_failure(
        tasks, redis_client, amqp_worker_app.key_prefix, group, TIMEOUT
    )


@pytest.mark.parametrize("impl", [celery_group, group], ids=["celery", "turbogroup"])
def test_worker_spans_continue_the_dispatching_trace(
    amqp_worker_app, tasks, impl, dispatch_reports
):
    """With OpenTelemetry's instrumentation on RabbitMQ, each message is
    built by turbogroup between the publish signals (``amqp_signalled``):
    the worker's span for each task is a child of the PRODUCER span whose
    ``traceparent`` its message carries, as with Celery."""
    pytest.importorskip("opentelemetry.sdk.trace")
    n = 40
    previous = _state.get_current_app()
    amqp_worker_app.set_current()
    try:
        with instrumented("tg-e2e-amqp") as (tracer, exporter):
            add = tasks["add"]
            with tracer.start_as_current_span("dispatch") as parent:
                res = impl([add.s(i, i) for i in range(n)], app=amqp_worker_app).apply_async()
            assert res.get(timeout=TIMEOUT) == [2 * i for i in range(n)]
            ids = [r.id for r in res.results]
            producers = spans_by_task(exporter, "apply_async/", n)
            runs = spans_by_task(exporter, "run/", n)
    finally:
        _state._set_current_app(previous)
    assert set(producers) == set(runs) == set(ids)
    for task_id in ids:
        producer, run = producers[task_id], runs[task_id]
        assert producer.parent.span_id == parent.get_span_context().span_id
        assert run.parent.span_id == producer.context.span_id
    reports = dispatch_reports()
    if impl is group:
        assert [(r.by_engine, r.by_celery) for r in reports] == [(n, 0)]
    else:
        assert reports == []

"""The bulk publisher's bookkeeping on kombu's in-memory transport (which
kombu does not batch, so each message is confirmed by its own publish):
nothing leaves before the end, retries per the policy, and which ids a
failure leaves unconfirmed. tests/integration covers Redis and RabbitMQ."""

from __future__ import annotations

import uuid
from typing import Any

import amqp
import pytest
from celery import signals
from kombu import Connection, Producer, Queue

from turbogroup.errors import PublishError
from turbogroup.publish import deferred
from turbogroup.publish.batch import Batch, bulk_publish_allowed, publish_batch


@pytest.fixture
def queue():
    name = f"turbogroup-unit-{uuid.uuid4().hex[:8]}"
    with Connection("memory://") as conn:
        q = Queue(name, routing_key=name)
        q(conn.default_channel).declare()
        yield conn, q


def queued(conn: Connection, q: Queue) -> list[str]:
    bound = q(conn.default_channel)
    ids = []
    while (message := bound.get(no_ack=True)) is not None:
        ids.append(message.properties["correlation_id"])
    return ids


def publish(batch: Batch, q: Queue, n: int) -> list[str]:
    ids = [f"id{i}" for i in range(n)]
    for task_id in ids:
        batch.producer.publish({"n": task_id}, routing_key=q.name, correlation_id=task_id)
        batch.published(task_id)
    return ids


def failing_replay(monkeypatch: pytest.MonkeyPatch, fail: set[int]) -> list[str]:
    """Replays raise a connection error of the transport (py-amqp's, for
    kombu's memory transport) on the listed attempts (0-based)."""
    attempts: list[str] = []
    original = deferred.replay

    def replay(producer: Any, record: deferred.Deferred) -> Any:
        attempts.append(record.task_id)
        if len(attempts) - 1 in fail:
            raise amqp.exceptions.ConnectionError("broker went away")
        return original(producer, record)

    monkeypatch.setattr("turbogroup.publish.batch.replay", replay)
    return attempts


def test_nothing_is_sent_before_the_end(queue):
    conn, q = queue
    producer = Producer(conn.default_channel)
    with publish_batch(producer, size=3) as batch:
        ids = publish(batch, q, 7)
        assert queued(conn, q) == []
    assert queued(conn, q) == ids
    assert batch.confirmed == 7


def test_a_child_that_raises_leaves_nothing_sent(queue):
    conn, q = queue
    producer = Producer(conn.default_channel)
    with pytest.raises(RuntimeError, match="bad child"):
        with publish_batch(producer, size=3) as batch:
            publish(batch, q, 5)
            raise RuntimeError("bad child")
    assert queued(conn, q) == []


def test_a_failure_names_exactly_the_unconfirmed_ids(queue, monkeypatch):
    conn, q = queue
    failing_replay(monkeypatch, fail={5})
    batch = Batch(Producer(conn.default_channel), size=3, retry=False)
    ids = publish(batch, q, 8)
    with pytest.raises(PublishError) as info:
        batch.flush()
    # messages are confirmed one by one on a transport without batches
    assert info.value.unconfirmed_ids == ids[5:]
    assert info.value.confirmed == 5
    assert "not confirmed sent" in str(info.value)
    assert isinstance(info.value.__cause__, amqp.exceptions.ConnectionError)
    assert queued(conn, q) == ids[:5]


def test_a_failed_message_is_retried_per_the_policy(queue, monkeypatch):
    conn, q = queue
    attempts = failing_replay(monkeypatch, fail={2, 3})
    policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0}
    batch = Batch(Producer(conn.default_channel), size=3, retry=True, retry_policy=policy)
    ids = publish(batch, q, 4)
    batch.flush()
    assert attempts == ["id0", "id1", "id2", "id2", "id2", "id3"]
    assert queued(conn, q) == ids


def test_retries_run_out_after_max_retries(queue, monkeypatch):
    conn, q = queue
    attempts = failing_replay(monkeypatch, fail={1, 2, 3})
    policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0}
    batch = Batch(Producer(conn.default_channel), size=3, retry=True, retry_policy=policy)
    ids = publish(batch, q, 4)
    with pytest.raises(PublishError) as info:
        batch.flush()
    assert attempts == ["id0", "id1", "id1", "id1"]
    assert info.value.unconfirmed_ids == ids[1:]


def test_publish_signal_receivers_keep_batching_on_every_transport(app):
    """``after_task_publish`` is held until sent, or acked on RabbitMQ
    (tests/integration/test_opentelemetry_dispatch.py,
    tests/integration/test_amqp_signals.py)."""
    redis_like = Producer(Connection("memory://").default_channel)
    amqp = type("P", (), {"connection": Connection("amqp://127.0.0.1:1//")})()

    def receiver(**kwargs):
        pass

    signals.after_task_publish.connect(receiver)
    try:
        assert bulk_publish_allowed(app, amqp)
        assert bulk_publish_allowed(app, redis_like)
    finally:
        signals.after_task_publish.disconnect(receiver)

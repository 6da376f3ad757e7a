"""The brokers a dispatch benchmark runs on, each with its own queue named
after the run's unique tag, and how to count, purge and remove it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from celery import Celery
from kombu import Exchange, Queue

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_PORTS = {"redis": 6379, "amqp": 5672, "postgresql": 5432}
TASK_NAME = "turbogroup.bench.add"


def reachable(url: str) -> bool:
    """Whether something listens where ``url`` points (memory:// always)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme == "memory":
        return True
    port = parts.port or DEFAULT_PORTS.get(scheme)
    if port is None:
        return False
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Transport:
    """One broker; ``queue`` (also the exchange and routing key, so that
    cleanup removes everything Celery declares) is unique to this run."""

    name: str
    url: str
    queue: str

    def make_app(self) -> Celery:
        app = Celery(f"turbogroup-bench-{self.name}", set_as_current=False)
        # No result backend: dispatch alone is measured (a Redis backend adds
        # a SUBSCRIBE per task to Celery's dispatch, ~100 us each).
        app.conf.update(
            broker_url=self.url,
            task_default_queue=self.queue,
            task_default_exchange=self.queue,
            task_default_routing_key=self.queue,
            broker_connection_retry_on_startup=False,
        )

        if self.name == "amqp-quorum":
            # RabbitMQ's replicated queue type (durable by definition)
            app.conf.task_queues = [
                Queue(
                    self.queue,
                    Exchange(self.queue),
                    routing_key=self.queue,
                    queue_arguments={"x-queue-type": "quorum"},
                )
            ]

        @app.task(name=TASK_NAME, shared=False)
        def add(x: int, y: int) -> int:
            return x + y

        return app

    def depth(self, app: Celery) -> int:
        """Messages in the queue now, as the broker counts them."""
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            # kombu's virtual transports (memory, Redis) count directly;
            # their passive declare fails on an empty Redis queue.
            size = getattr(channel, "_size", None)
            if size is not None:
                return int(size(self.queue))
            return int(channel.queue_declare(queue=self.queue, passive=True).message_count)

    def purge(self, app: Celery) -> None:
        with app.connection_for_write() as conn:
            queue = app.amqp.queues[self.queue].bind(conn.default_channel)
            queue.declare()
            queue.purge()

    def cleanup(self, app: Celery) -> None:
        """Remove the queue, its exchange and (Redis) every key naming it."""
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            channel.queue_delete(self.queue)
            if self.name.startswith("amqp"):
                channel.exchange_delete(self.queue)
        if self.name == "redis":
            delete_redis_keys(self.url, f"*{self.queue}*")


class TransportPeer:
    """A plain client timed on one of the bench's transports (a broker's
    limit): its queue is the transport's, counted and purged as theirs."""

    def __init__(self, transport: Transport, app: Celery) -> None:
        self.transport = transport
        self.app = app

    def depth(self) -> int:
        return self.transport.depth(self.app)

    def purge(self) -> None:
        self.transport.purge(self.app)


def delete_redis_keys(url: str, pattern: str) -> int:
    """Delete the keys matching ``pattern`` (a SCAN, never FLUSHDB)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
        return deleted
    finally:
        client.close()

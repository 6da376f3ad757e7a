"""A RabbitMQ test's apps, queues and faults: the apps of the ``make_app``
fixture (queues of their own, deleted afterwards), what a queue holds, and
faults injected at a chosen message write."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import amqp
from celery import Celery
from kombu import Connection, Exchange, Queue


def amqp_apps(amqp_url: str, unique_name: str) -> Iterator[Callable[..., Celery]]:
    """The ``make_app`` fixture's factory: ``make(queue_arguments=None,
    extra_queue=None)`` gives an app with a queue (and exchange) of its own
    and tasks ``t.add``, ``t.other``, ``t.on_error``; every queue and
    exchange is deleted afterwards."""
    created: list[tuple[Celery, list[str]]] = []

    def make(queue_arguments: dict[str, Any] | None = None, extra_queue: str | None = None):
        name = f"{unique_name}-{len(created)}"
        queues = [Queue(name, Exchange(name), routing_key=name, queue_arguments=queue_arguments)]
        if extra_queue:
            queues.append(Queue(f"{name}-{extra_queue}", Exchange(f"{name}-{extra_queue}")))
        app = Celery("turbogroup-amqp-test", set_as_current=False)
        app.conf.update(
            broker_url=amqp_url,
            task_default_queue=name,
            task_queues=queues,
            broker_connection_retry_on_startup=False,
        )

        @app.task(shared=False, name="t.add")
        def add(*args, **kwargs):
            # never run here; *args so partial args pass the signature check
            return args, kwargs

        @app.task(shared=False, name="t.other")
        def other(*args):
            return args

        @app.task(shared=False, name="t.on_error")
        def on_error(request, exc, traceback):
            return None

        if extra_queue:
            app.conf.task_routes = {"t.other": {"queue": f"{name}-{extra_queue}"}}
        app.add, app.other, app.on_error = add, other, on_error
        app.queue_names = [q.name for q in queues]
        created.append((app, app.queue_names))
        return app

    yield make
    with Connection(amqp_url) as conn:
        channel = conn.channel()
        for app, names in created:
            for name in names:
                channel.queue_delete(name)
                channel.exchange_delete(name)
            app.close()
        channel.close()


def message_count(app: Celery, queue: str) -> int:
    with app.connection_for_write() as conn:
        channel = conn.channel()
        try:
            return channel.queue_declare(queue, passive=True).message_count
        finally:
            channel.close()


def take_deliveries(app: Celery, queue: str) -> list[Any]:
    """Every message in ``queue`` (removed), as py-amqp delivers it."""
    deliveries = []
    with app.connection_for_write() as conn:
        channel = conn.channel()
        while (msg := channel.basic_get(queue, no_ack=True)) is not None:
            deliveries.append(msg)
        channel.close()
    return deliveries


class Delivered(NamedTuple):
    """A message as RabbitMQ delivered it: its headers apart from its other
    properties (py-amqp keeps both in their order on the wire)."""

    exchange: str
    routing_key: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    body: Any

    @classmethod
    def of(cls, msg: Any) -> Delivered:
        properties = dict(msg.properties)
        headers = properties.pop("application_headers", {})
        info = msg.delivery_info
        return cls(info["exchange"], info["routing_key"], headers, properties, msg.body)


def take_messages(app: Celery, queue: str) -> list[dict[str, Any]]:
    """Every message in ``queue`` (removed), decoded."""
    messages = []
    for msg in map(Delivered.of, take_deliveries(app, queue)):
        message = msg._asdict()
        message["body"] = json.loads(msg.body)
        messages.append(message)
    return messages


def queued_ids(app: Celery, queue: str) -> list[str]:
    return [m["headers"]["id"] for m in take_messages(app, queue)]


def with_ids(app: Celery, n: int) -> tuple[list[Any], list[str]]:
    # Explicit ids (kept by freeze) so the test knows the id of every child,
    # including the ones after a failure that never got a result.
    ids = [f"task-{i:05d}-{uuid.uuid4().hex[:8]}" for i in range(n)]
    return [app.add.s(i, i).set(task_id=ids[i]) for i in range(n)], ids


def hook_publishes(monkeypatch, at: int, action: Callable[[Any], None]) -> list[str]:
    """Run ``action(channel)`` just before the ``at``-th (0-based) frame
    write of a ``basic.publish``; returns the task ids in write order."""
    original = amqp.Channel._basic_publish
    seen: list[str] = []

    def hooked(self, msg, *args, **kwargs):
        seen.append(msg.properties["correlation_id"])
        if len(seen) == at + 1:
            action(self)
        return original(self, msg, *args, **kwargs)

    monkeypatch.setattr(amqp.Channel, "_basic_publish", hooked)
    return seen


# Found off PATH too: the wheel runs use a PATH without /usr/sbin, where a
# missing rabbitmqctl raised FileNotFoundError in place of the fault.
RABBITMQCTL = shutil.which("rabbitmqctl") or shutil.which(
    "rabbitmqctl", path="/usr/sbin:/usr/lib/rabbitmq/bin"
)


def close_from_broker(channel: Any) -> None:
    """Have RabbitMQ itself close this connection (and only this one)."""
    port = channel.connection.sock.getsockname()[1]
    rows = subprocess.run(
        [RABBITMQCTL, "-q", "--no-table-headers", "list_connections", "pid", "name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    (pid,) = [r.split("\t")[0] for r in rows if f"\t127.0.0.1:{port} ->" in r]
    subprocess.run(
        [RABBITMQCTL, "-q", "close_connection", pid, "turbogroup test"],
        capture_output=True,
        check=True,
    )


def drop_socket(channel: Any) -> None:
    channel.connection.sock.shutdown(socket.SHUT_RDWR)

from __future__ import annotations

import uuid

import pytest
import redis
from celery import Celery

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.integration import celery_wire
from tests.integration.amqp_env import amqp_apps
from turbogroup.benchkit.collect import close_app


@pytest.fixture
def backend_app(redis_url):
    """An app whose Redis result backend keys all carry a unique prefix,
    deleted afterwards."""
    yield from prefixed_backend_app(redis_url, f"turbogroup-it-{uuid.uuid4().hex[:10]}:")


def prefixed_backend_app(redis_url, prefix):
    """The app of ``backend_app`` with the key prefix given."""
    app = Celery("turbogroup-integration", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    yield app
    close_app(app)
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_add_env(redis_url):
    """(app, add, queue, broker): an app on Redis (broker and result backend,
    its own queue and key prefix) with an ``add`` task; its keys are
    deleted afterwards."""
    queue = f"tg-plain-{uuid.uuid4().hex[:10]}"
    app = Celery("tg_plain", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": f"{queue}:"},
        task_default_queue=queue,
    )

    @app.task(name="tg_plain.add", shared=False)
    def add(x, y=0):
        return x + y

    broker = redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")
    yield app, add, queue, broker
    keys = list(broker.scan_iter(match=f"*{queue}*"))
    if keys:
        broker.delete(*keys)
    broker.close()
    close_app(app)
    backend = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    keys = list(backend.scan_iter(match=f"{queue}:*"))
    if keys:
        backend.delete(*keys)
    backend.close()


@pytest.fixture
def wire_env(redis_url):
    """An app with its clock frozen, its tasks, its queues and a broker
    client, for wire-level comparisons with Celery (``celery_wire``)."""
    yield from celery_wire.wire_env(redis_url)


@pytest.fixture
def make_app(amqp_url, unique_name):
    """RabbitMQ apps with queues of their own, deleted afterwards
    (``amqp_env.amqp_apps``)."""
    yield from amqp_apps(amqp_url, unique_name)

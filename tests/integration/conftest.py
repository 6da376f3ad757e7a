from __future__ import annotations

import uuid

import pytest
import redis
from celery import Celery

from tests.conftest import REDIS_BACKEND_DB


@pytest.fixture
def backend_app(redis_url):
    """An app whose Redis result backend keys all carry a unique prefix,
    deleted afterwards."""
    prefix = f"turbogroup-it-{uuid.uuid4().hex[:10]}:"
    app = Celery("turbogroup-integration", set_as_current=False)
    app.conf.update(
        broker_url="memory://",
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": prefix},
    )
    yield app
    backend = app.backend
    backend.result_consumer.stop()
    backend.client.connection_pool.disconnect()
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    app.close()

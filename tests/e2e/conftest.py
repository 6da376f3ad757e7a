"""A real Celery worker on real Redis (broker and result backend).

Every key the run creates carries a unique prefix (kombu's and the Redis
backend's ``global_keyprefix``) on our own db numbers, and is deleted at the
end: nothing else on the server is touched.
"""

from __future__ import annotations

import time
import uuid

import celery.contrib.testing.tasks  # noqa: F401 - registers the ping task start_worker uses
import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB


# Module scope: two in-process workers must never run at once (the AMQP
# module starts its own), so each module gets and stops its own.
@pytest.fixture(scope="module")
def key_prefix() -> str:
    return f"turbogroup-e2e-{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="session")
def redis_client(redis_url):
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    yield client
    client.close()


def _delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        # kombu keeps the binding set unprefixed-first for some keys
        keys += list(client.scan_iter(match=f"*{prefix}*", count=1000))
        if keys:
            client.delete(*set(keys))
    finally:
        client.close()


def make_worker_app(name: str, key_prefix: str, redis_client, **conf) -> Celery:
    """An app with the e2e tasks; results go to Redis under ``key_prefix``."""
    app = Celery(name, set_as_current=False)
    app.conf.update(
        result_expires=3600,
        broker_connection_retry_on_startup=False,
        worker_hijack_root_logger=False,
        **conf,
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
        redis_client.rpush(f"{key_prefix}errbacks", request.id)

    app.tasks_by_name = {"add": add, "tsum": tsum, "fail": fail, "on_error": on_error}
    app.key_prefix = key_prefix
    return app


def make_redis_worker_app(name: str, redis_url: str, key_prefix: str, redis_client) -> Celery:
    """Redis broker and backend on our db numbers, every key under ``key_prefix``."""
    return make_worker_app(
        name,
        key_prefix,
        redis_client,
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        broker_transport_options={"global_keyprefix": key_prefix},
        result_backend_transport_options={"global_keyprefix": key_prefix},
        task_default_queue=f"{key_prefix}celery",
    )


def assert_link_error_runs_once_per_failure(tasks, redis_client, key_prefix, group, timeout):
    add, fail, on_error = tasks["add"], tasks["fail"], tasks["on_error"]
    key = f"{key_prefix}errbacks"
    redis_client.delete(key)
    g = group(fail.s(1), add.s(1, 1), fail.s(2), fail.s(3))
    g.link_error(on_error.s())
    res = g.apply_async()
    # join_native raises whichever failure it reads first, as Celery does
    with pytest.raises(ValueError, match="failing on purpose: [123]"):
        res.get(timeout=timeout)
    failing = {res.results[i].id for i in (0, 2, 3)}
    deadline = time.monotonic() + timeout
    while redis_client.llen(key) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # a duplicate errback would land by now
    called = [x.decode() for x in redis_client.lrange(key, 0, -1)]
    assert sorted(called) == sorted(failing)
    assert res.results[1].get(timeout=timeout) == 2
    redis_client.delete(key)


@pytest.fixture(scope="module")
def worker_app(redis_url, key_prefix, redis_client):
    app = make_redis_worker_app("turbogroup-e2e", redis_url, key_prefix, redis_client)
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=True):
        yield app
    app.close()
    _delete_prefixed(f"{redis_url}/{REDIS_BROKER_DB}", key_prefix)
    _delete_prefixed(f"{redis_url}/{REDIS_BACKEND_DB}", key_prefix)


@pytest.fixture
def tasks(worker_app):
    return worker_app.tasks_by_name

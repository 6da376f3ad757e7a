"""A broker that fails while a large group is being published loses nothing.

Redis: a redis-server of the test's own (append-only file, fsync always, so
what it acknowledged survives a SIGKILL) is killed and restarted while the
group's messages are being pushed. RabbitMQ: the broker closes the
dispatching connection mid-way. Afterwards every task id is in the queue, or
``apply_async`` raised a ``PublishError`` whose ``unconfirmed_ids`` cover
every id missing from the queue; ``error.resume()`` sends exactly those
messages again and completes the group, and a real worker then drains the
queue and every result is collected.

TURBOGROUP_FAULT_N sets the group size: 20,000 by default, so that the
whole suite stays well inside CI's time (an in-process worker drains ~600
tasks a second here); TURBOGROUP_FAULT_N=100000 is the issue's size.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection

import turbogroup.publish.redis_wire
from tests.integration.amqp_env import close_from_broker, hook_publishes
from turbogroup import group
from turbogroup.app_results import group_result_cls
from turbogroup.errors import PublishError

N = int(os.environ.get("TURBOGROUP_FAULT_N", "20000"))
# The worker drains the whole group: allow for it at any N.
pytestmark = pytest.mark.timeout(max(300, int(N / 50)))
# Celery's policy shape; generous enough to ride out a restart.
RETRY_POLICY = {"max_retries": 60, "interval_start": 0.1, "interval_step": 0.1, "interval_max": 0.5}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server on loopback that only this test uses."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="turbogroup-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--protected-mode", "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (the README's test command installs it)")
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


def make_app(broker: str, backend: str, queue: str, backend_options: dict[str, Any]) -> Celery:
    app = Celery("turbogroup-faults", set_as_current=False)
    app.conf.update(
        broker_url=broker,
        result_backend=backend,
        result_backend_transport_options=backend_options,
        task_default_queue=queue,
        task_publish_retry_policy=RETRY_POLICY,
        broker_connection_retry_on_startup=False,
        result_expires=3600,
        worker_hijack_root_logger=False,
    )

    @app.task(shared=False, name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    app.add = add
    return app


def frozen_children(app: Celery, n: int) -> tuple[list[Any], list[str]]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    return [app.add.s(i, i).set(task_id=ids[i]) for i in range(n)], ids


def dispatch_until_complete(
    app: Celery, sigs: list[Any], ids: list[str], queued: Callable[[], list[str]]
) -> tuple[PublishError | None, list[str]]:
    """The dispatch under test, then the recovery a caller does with the
    error: ``resume()``, which sends exactly the unconfirmed messages."""
    error = None
    try:
        group(sigs).apply_async()
    except PublishError as exc:
        error = exc
    in_queue = queued()
    missing = set(ids) - set(in_queue)
    if error is None:
        assert not missing, f"{len(missing)} task(s) lost without an error"
    else:
        assert missing <= set(error.unconfirmed_ids), "a missing id was not reported"
        assert error.confirmed + len(error.unconfirmed_ids) == len(ids)
        error.resume()
        assert set(ids) <= set(queued())
    return error, in_queue


def drain_and_collect(app: Celery, ids: list[str]) -> None:
    results = group_result_cls(app)(str(uuid.uuid4()), [app.AsyncResult(i) for i in ids])
    with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False):
        values = results.get(timeout=max(300, N / 200))
    assert values == [2 * i for i in range(len(ids))]


def test_redis_killed_and_restarted_mid_dispatch(own_redis: OwnRedis, monkeypatch, caplog) -> None:
    queue = f"turbogroup-fault-{uuid.uuid4().hex[:8]}"
    app = make_app(own_redis.url, own_redis.url.replace("/0", "/1"), queue, {})
    sigs, ids = frozen_children(app, N)
    # The kill comes from inside the dispatch, just before its k-th
    # batch of 1000 messages is sent: mid-dispatch for sure.
    # The server comes back half a second later, in another thread.
    kill_before = max(N // 1000 // 5, 1)
    executed = 0
    restarted: list[threading.Thread] = []
    write_transaction = turbogroup.publish.redis_wire._write_transaction

    def write_with_fault(*args: Any, **kwargs: Any) -> Any:
        nonlocal executed
        executed += 1
        if executed == kill_before:
            own_redis.kill()
            restarted.append(threading.Thread(target=restart_later, daemon=True))
            restarted[0].start()
        return write_transaction(*args, **kwargs)

    def restart_later() -> None:
        time.sleep(0.5)
        own_redis.start()

    def queued() -> list[str]:
        client = redis.Redis.from_url(own_redis.url)
        try:
            raw = client.lrange(queue, 0, -1)
        finally:
            client.close()
        return [json.loads(m)["headers"]["id"] for m in raw]

    monkeypatch.setattr(turbogroup.publish.redis_wire, "_write_transaction", write_with_fault)
    with caplog.at_level(logging.WARNING, logger="turbogroup.publish"):
        error, in_queue = dispatch_until_complete(app, sigs, ids, queued)
    monkeypatch.undo()
    assert restarted, "the fault was never injected"
    restarted[0].join(60)
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert error is not None or retried
    print(
        f"\nredis killed before batch {kill_before}, back 0.5 s later: N={N}, "
        f"retries={len(retried)}, error={error!r:.80}, queued on return={len(in_queue)}, "
        f"distinct={len(set(in_queue))}"
    )
    drain_and_collect(app, ids)
    app.close()


@pytest.mark.amqp
def test_amqp_connection_closed_mid_dispatch(amqp_url, redis_url, monkeypatch) -> None:
    queue = f"turbogroup-fault-{uuid.uuid4().hex[:8]}"
    prefix = f"{queue}:"
    backend = f"{redis_url}/12"
    app = make_app(amqp_url, backend, queue, {"global_keyprefix": prefix})
    sigs, ids = frozen_children(app, N)
    probe = Connection(amqp_url)
    probe_channel = probe.channel()
    # The close comes from inside the dispatch, just before the frame write
    # of its (N/5)-th message: RabbitMQ has closed the connection when
    # rabbitmqctl returns, so it is mid-dispatch for sure (a thread watching
    # the queue's length could act after a fast dispatch had ended).
    closed: list[bool] = []

    def close(channel: Any) -> None:
        close_from_broker(channel)
        closed.append(True)

    hook_publishes(monkeypatch, N // 5, close)

    def queued() -> list[str]:
        taken = []
        with Connection(amqp_url) as conn:
            channel = conn.channel()
            while (msg := channel.basic_get(queue, no_ack=False)) is not None:
                taken.append(msg.properties["correlation_id"])
            channel.close()  # unacked: requeued for the worker
        return taken

    error, in_queue = dispatch_until_complete(app, sigs, ids, queued)
    monkeypatch.undo()
    assert closed, "the broker never closed the connection"
    # Closed mid-dispatch: with unacknowledged messages in flight, that is
    # never retried (a resend could duplicate silently), so it raised.
    assert error is not None, "the connection was closed after the dispatch"
    print(
        f"\namqp connection closed mid-dispatch: N={N}, error={error!r:.80}, "
        f"queued on return={len(in_queue)}, distinct={len(set(in_queue))}"
    )
    try:
        drain_and_collect(app, ids)
    finally:
        probe_channel.queue_delete(queue)
        probe.close()
        client = redis.Redis.from_url(backend)
        keys = list(client.scan_iter(match=f"{prefix}*", count=5000))
        if keys:
            client.delete(*keys)
        client.close()
        app.close()

"""Smoke test of an installed wheel: what a user gets from ``pip install``.

    python tests/smoke/wheel_smoke.py REDIS_URL AMQP_URL

Run with a venv's interpreter in which only the built wheel and its
dependencies are installed, with no Rust toolchain on PATH. It checks that
``turbogroup`` comes from site-packages (not the source tree), then runs a
group end to end with an in-process Celery worker on Redis (broker and
result backend): every result back, in order; and dispatches one to
RabbitMQ, whose messages must all be confirmed and queued on return. In
both, the fast path must have done the dispatching. Exit status 0 when
all of it holds.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path

N = 500
TIMEOUT = 60


def check_installed_from_wheel() -> None:
    # Run as a script, sys.path[0] is this folder: the source tree's
    # python/ directory is not on the path, so a wheel must provide it.
    import turbogroup
    from turbogroup import _core

    here = Path(__file__).resolve().parents[2]
    where = Path(turbogroup.__file__).resolve()
    assert "site-packages" in where.parts, f"turbogroup imported from {where}"
    assert here not in where.parents, f"turbogroup imported from the source tree: {where}"
    assert Path(_core.__file__).suffix == ".so", _core.__file__
    for tool in ("cargo", "rustc"):
        assert shutil.which(tool) is None, f"{tool} is on PATH: the wheel must not need it"
    print(f"turbogroup {turbogroup.__version__} on Python {sys.version.split()[0]} from {where}")


def run_group(broker_url: str, backend_url: str) -> None:
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    from turbogroup import group
    from turbogroup.result import LazyResults

    queue = f"turbogroup-smoke-{uuid.uuid4().hex[:10]}"
    app = Celery("turbogroup_smoke", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        result_backend=backend_url,
        result_backend_transport_options={"global_keyprefix": f"{queue}:"},
        task_default_queue=queue,
        worker_hijack_root_logger=False,
    )

    @app.task(name="turbogroup_smoke.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    res = None
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[queue]):
            res = group(add.s(i, i) for i in range(N)).apply_async()
            # Kept as ids only by turbogroup's fast path.
            assert type(res._results) is LazyResults, "dispatched by Celery's per-message path"
            values = res.get(timeout=TIMEOUT)
        assert values == [2 * i for i in range(N)], values[:10]
        print(f"redis: {N} results back in order")
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
            bindings = (f"_kombu.{kind}.{queue}" for kind in ("binding", "binding_permanent"))
            conn.default_channel.client.delete(*bindings)
        if res is not None:
            res.forget()
        app.backend.result_consumer.stop()
        app.close()


def run_confirmed(amqp_url: str) -> None:
    """RabbitMQ: every message confirmed and queued when ``apply_async``
    returns, each one a child of the group. (Read back from the queue: an
    in-process worker on AMQP stalls with Celery's own group as well.)"""
    from celery import Celery
    from kombu import Queue

    from turbogroup import group
    from turbogroup.result import LazyResults

    queue = f"turbogroup-smoke-{uuid.uuid4().hex[:10]}"
    app = Celery("turbogroup_smoke", set_as_current=False)
    app.conf.update(broker_url=amqp_url, task_default_queue=queue)

    @app.task(name="turbogroup_smoke.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    try:
        res = group(add.s(i, i) for i in range(N)).apply_async()
        assert type(res._results) is LazyResults, "dispatched by Celery's per-message path"
        with app.connection_for_write() as conn:
            bound = Queue(queue).bind(conn.default_channel)
            assert bound.queue_declare(passive=True).message_count == N
            seen = []
            while (message := bound.get(no_ack=True)) is not None:
                headers = message.headers
                assert headers["group"] == res.id
                seen.append((headers["group_index"], headers["id"]))
        assert sorted(seen) == [(i, r.id) for i, r in enumerate(res.results)]
        print(f"amqp: {N} messages confirmed, queued and read back")
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        app.close()


def main() -> int:
    redis_url, amqp_url = sys.argv[1], sys.argv[2]
    check_installed_from_wheel()
    run_group(f"{redis_url}/11", f"{redis_url}/12")
    run_confirmed(amqp_url)
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

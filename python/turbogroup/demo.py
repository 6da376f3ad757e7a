"""``python -m turbogroup demo``: a group of N tasks dispatched through
kombu's in-memory transport to an in-process Celery worker, collected, and
timed against ``celery.canvas.group`` on the same app. No broker needed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.backends.cache import CacheBackend, DummyClient
from celery.canvas import group as celery_group
from celery.utils.functional import LRUCache

from turbogroup.group import group

# Shared by every thread's backend, as Celery's own in-memory cache is.
_RESULTS: LRUCache = LRUCache(limit=None)


class _UnboundedClient(DummyClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.cache = _RESULTS


class DemoBackend(CacheBackend):
    """Celery's ``cache+memory://`` without its 5,000-result limit.

    That cache is an LRU of 5,000 entries shared by the process: with
    10,000 tasks the worker evicts results before ``get()`` reads them,
    and the group never completes.
    """

    def __init__(self, app: Celery, **kwargs: Any) -> None:
        kwargs.pop("url", None)
        super().__init__(app, backend="memory://", **kwargs)
        self.Client = _UnboundedClient


def make_app() -> Celery:
    import celery.contrib.testing.tasks  # noqa: F401 - the worker's ping task

    app = Celery("turbogroup-demo", set_as_current=False)
    app.conf.update(
        broker_url="memory://localhost/",
        result_backend="turbogroup.demo:DemoBackend",
        worker_hijack_root_logger=False,
        # kombu's memory transport sleeps polling_interval (1 s) whenever a
        # poll comes back with less than the prefetch window: poll often
        # and prefetch wide so the worker, not the sleep, is measured.
        broker_transport_options={"polling_interval": 0.001},
        worker_prefetch_multiplier=256,
    )

    @app.task(name="demo.square", shared=False)
    def square(x: int) -> int:
        return x * x

    return app


def run_once(app: Celery, impl: Callable[..., Any], n: int, timeout: float) -> dict[str, Any]:
    square = app.tasks["demo.square"]
    sig = impl((square.s(i) for i in range(n)), app=app)
    t0 = time.perf_counter()
    res = sig.apply_async()
    t1 = time.perf_counter()
    values = res.get(timeout=timeout)
    t2 = time.perf_counter()
    return {"values": values, "dispatch": t1 - t0, "total": t2 - t0}


def main(n: int = 1000, timeout: float = 120.0) -> int:
    from celery.contrib.testing.worker import start_worker

    logging.getLogger("celery").setLevel(logging.WARNING)
    app = make_app()
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=True,
        loglevel="WARNING",
        hostname="turbogroup-demo@localhost",
    ):
        ours = run_once(app, group, n, timeout)
        theirs = run_once(app, celery_group, n, timeout)
    app.close()

    expected = [i * i for i in range(n)]
    ok = ours["values"] == expected == theirs["values"]
    head = ", ".join(map(str, ours["values"][:8]))
    print(f"turbogroup.group of {n} tasks (memory transport, in-process worker)")
    print(f"results: [{head}{', ...' if n > 8 else ''}]  sum={sum(ours['values'])}")
    print(f"all {n} results correct and in order: {'yes' if ok else 'NO'}")
    print()
    print(f"{'':24}{'dispatch':>12}{'dispatch+collect':>20}")
    for name, r in (("turbogroup.group", ours), ("celery.canvas.group", theirs)):
        print(f"{name:24}{r['dispatch']:>11.3f}s{r['total']:>19.3f}s")
    print(
        f"{'ratio (celery/turbo)':24}{theirs['dispatch'] / ours['dispatch']:>11.2f}x"
        f"{theirs['total'] / ours['total']:>19.2f}x"
    )
    print()
    print("The worker in this process bounds dispatch+collect. Against a real broker:")
    print(f"  python -m turbogroup bench --sizes {n} --transports redis,amqp")
    return 0 if ok else 1

"""One run of the thread-stress shape, in a process of its own.

    python -m tests.stress.dispatch_threads VARIANT REDIS_URL [--hostile]

One app; THREADS threads; each builds GROUPS groups of N ``mark.s(t, g, i)``,
waits for the others on a ``threading.Barrier``, then dispatches its groups
one after another and reads ``[r.id for r in res.results]``. Groups of 2,000
stay under the collector pause threshold, so garbage collections run while
dispatches start and end on other threads: the shape that segfaulted.

Variants:
- ``plain``: the shape above, list groups.
- ``generator``: every other group is a lazy generator group.
- ``collect``: while the dispatching threads run, a store thread writes each
  dispatched group's results as a worker would, and collector threads call
  ``get()`` and ``completed_count()`` on them.
- ``sentry``: sentry-sdk's Celery integration is on (its wrappers run
  around the encoder's messages, ``publish/wrapped.py``) and each thread
  dispatches inside a transaction of its own: each message must also carry
  a ``sentry-trace`` of its own in its thread's trace.

``--hostile`` makes collections and thread switches as frequent as CPython
allows, to widen any window where the collector could see a half-made
object. Every message in the queue is then checked against its group:
each id once, its own group id, ``group_index`` 0..N-1 once each, and the
arguments it was built with. Exit status 0 only if all of it holds; a crash
shows as death by signal.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import faulthandler
import gc
import json
import queue
import sys
import threading
import uuid
from typing import Any

import redis
from celery import Celery, states

from turbogroup import group
from turbogroup.publish.report import collected_reports
from turbogroup.result import LazyResults

THREADS = 8
GROUPS = 5
N = 2000
COLLECTORS = 2
TIMEOUT = 60
BROKER_DB = 11
BACKEND_DB = 12


class Run:
    """The app, its queue and what the threads record."""

    def __init__(self, variant: str, redis_url: str) -> None:
        self.variant = variant
        self.prefix = f"turbogroup-stress-{uuid.uuid4().hex[:10]}:"
        self.queue = self.prefix.rstrip(":")
        self.sentry: Any = None
        if variant == "sentry":
            from tests.sentry import init_sentry

            self.sentry = init_sentry()
        # (thread, group) -> the trace its messages belong to
        self.traces: dict[tuple[int, int], str] = {}
        self.app = Celery("turbogroup-stress", set_as_current=False)
        self.app.conf.update(
            broker_url=f"{redis_url}/{BROKER_DB}",
            broker_transport_options={"global_keyprefix": self.prefix},
            result_backend=f"{redis_url}/{BACKEND_DB}",
            result_backend_transport_options={"global_keyprefix": self.prefix},
            task_default_queue=self.queue,
        )

        @self.app.task(shared=False)
        def mark(t: int, g: int, i: int) -> int:
            return i

        # The task as registered, not the PromiseProxy the decorator
        # returns: Celery's proxy evaluates itself on first use without a
        # lock, and threads racing there fail with an AttributeError
        # ('_Proxy__local', '_Proxy__args'): Celery's own race, seen with
        # no turbogroup imported (1 of 30 runs of 8 threads calling .s()),
        # and not what this stresses.
        self.app.finalize()
        self.mark = self.app.tasks[mark.name]
        self.broker = redis.Redis.from_url(f"{redis_url}/{BROKER_DB}")
        self.backend = redis.Redis.from_url(f"{redis_url}/{BACKEND_DB}")
        self.dispatched: dict[tuple[int, int], tuple[str, list[str]]] = {}
        self.slow_path: list[tuple[int, int]] = []
        self.errors: list[BaseException] = []
        self.collected: list[tuple[str, list[Any], int]] = []
        self.to_store: queue.Queue[Any] = queue.Queue()
        self.to_collect: queue.Queue[Any] = queue.Queue()

    def canvases(self, t: int) -> list[Any]:
        def children(g: int) -> Any:
            return (self.mark.s(t, g, i) for i in range(N))

        lazy = self.variant == "generator"
        return [group(children(g) if lazy and g % 2 else list(children(g))) for g in range(GROUPS)]

    def cleanup(self) -> None:
        self.app.backend.result_consumer.stop()
        self.app.close()
        for client in (self.broker, self.backend):
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=10_000))
            for start in range(0, len(keys), 5000):
                client.delete(*keys[start : start + 5000])
            client.close()


def guarded(run: Run, target: Any) -> Any:
    def body(*args: Any) -> None:
        try:
            target(*args)
        except BaseException as exc:  # reported by the main thread
            run.errors.append(exc)

    return body


def dispatcher(run: Run, t: int, start: threading.Barrier) -> None:
    canvases = run.canvases(t)
    start.wait(timeout=TIMEOUT)
    if run.sentry is None:
        dispatch(run, t, canvases)
        return
    with run.sentry.start_transaction(name=f"dispatch {t}", op="stress") as transaction:
        for g in range(len(canvases)):
            run.traces[(t, g)] = transaction.trace_id
        dispatch(run, t, canvases)


def dispatch(run: Run, t: int, canvases: list[Any]) -> None:
    for g, canvas in enumerate(canvases):
        res = canvas.apply_async()
        # Kept as ids only by the fast path: a silent fallback to Celery's
        # per-message path would stress nothing of ours.
        if type(res._results) is not LazyResults:
            run.slow_path.append((t, g))
        run.dispatched[(t, g)] = (res.id, [r.id for r in res.results])
        run.to_store.put(res)


def storer(run: Run) -> None:
    """Stores each dispatched group's results as the worker's
    ``backend.store_result`` would (SUCCESS metas, SET with expiry), then
    hands the group to the collectors."""
    backend = run.app.backend
    template = backend._get_result_meta(
        result=None, state=states.SUCCESS, traceback=None, request=None
    )
    while (res := run.to_store.get()) is not None:
        pipe = backend.client.pipeline(transaction=False)
        for i, child in enumerate(res.results):
            meta = {**template, "result": i, "group_id": res.id, "task_id": child.id}
            pipe.set(backend.get_key_for_task(child.id), backend.encode(meta), ex=3600)
        pipe.execute()
        for _ in range(COLLECTORS):
            run.to_collect.put(res)
    for _ in range(COLLECTORS):
        run.to_collect.put(None)


def collector(run: Run) -> None:
    while (res := run.to_collect.get()) is not None:
        count = res.completed_count()
        run.collected.append((res.id, res.get(timeout=TIMEOUT), count))


def read_queue(run: Run) -> list[dict[str, Any]]:
    out = []
    for raw in run.broker.lrange(f"{run.prefix}{run.queue}", 0, -1):
        envelope = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        out.append({**envelope["headers"], "args": args})
    return out


def check(run: Run) -> list[str]:
    """What is wrong with the queue and the collected results; empty if
    every group is exact."""
    problems = []
    if run.slow_path:
        problems.append(f"groups {run.slow_path} took Celery's per-message path")
    if len(run.dispatched) != THREADS * GROUPS:
        problems.append(f"{len(run.dispatched)} of {THREADS * GROUPS} groups dispatched")
    messages = read_queue(run)
    by_group: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for m in messages:
        by_group[m["group"]].append(m)
    if len(messages) != THREADS * GROUPS * N:
        problems.append(f"{len(messages)} messages queued, want {THREADS * GROUPS * N}")
    for (t, g), (group_id, ids) in sorted(run.dispatched.items()):
        got = by_group.pop(group_id, [])
        if sorted(m["id"] for m in got) != sorted(ids) or len(set(ids)) != N:
            problems.append(f"group {t}/{g}: ids differ from its results' ids")
        if sorted(m["group_index"] for m in got) != list(range(N)):
            problems.append(f"group {t}/{g}: group_index is not 0..{N - 1} once each")
        if any(m["args"] != [t, g, m["group_index"]] for m in got):
            problems.append(f"group {t}/{g}: a message carries another child's arguments")
        if run.sentry is not None:
            traces = [m.get("sentry-trace", "-").split("-") for m in got]
            if any(trace[0] != run.traces[(t, g)] for trace in traces):
                problems.append(f"group {t}/{g}: a message is not in its thread's trace")
            if len({trace[1] for trace in traces}) != N:
                problems.append(f"group {t}/{g}: two messages share a span")
    if by_group:
        problems.append(f"messages of {len(by_group)} unknown groups")
    if run.variant == "collect":
        want = THREADS * GROUPS * COLLECTORS
        if len(run.collected) != want:
            problems.append(f"{len(run.collected)} collections, want {want}")
        for group_id, values, count in run.collected:
            if values != list(range(N)) or count != N:
                problems.append(f"group {group_id}: collected {count} / wrong values")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=["plain", "generator", "collect", "sentry"])
    parser.add_argument("redis_url")
    parser.add_argument("--hostile", action="store_true")
    opts = parser.parse_args()
    faulthandler.enable()
    if opts.hostile:
        gc.set_threshold(10, 1, 1)
        sys.setswitchinterval(1e-5)

    run = Run(opts.variant, opts.redis_url)
    stack = contextlib.ExitStack()
    try:
        start = threading.Barrier(THREADS)
        threads = [
            threading.Thread(target=guarded(run, dispatcher), args=(run, t, start))
            for t in range(THREADS)
        ]
        helpers = []
        if opts.variant == "collect":
            helpers = [threading.Thread(target=guarded(run, storer), args=(run,))]
            helpers += [
                threading.Thread(target=guarded(run, collector), args=(run,))
                for _ in range(COLLECTORS)
            ]
        reports = stack.enter_context(collected_reports())
        for th in threads + helpers:
            th.start()
        for th in threads:
            th.join()
        run.to_store.put(None)
        for th in helpers:
            th.join()
        problems = [f"{type(e).__name__}: {e}" for e in run.errors] or check(run)
        # every message built by the encoder (inside Sentry's wrappers too)
        built = [(r.by_engine, r.by_celery) for r in reports]
        if built != [(N, 0)] * len(run.dispatched):
            problems.append(f"built by the encoder / by Celery, per dispatch: {built[:5]}...")
    finally:
        stack.close()
        run.cleanup()
    print(json.dumps({"variant": opts.variant, "problems": problems[:20]}))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Dispatch of a pre-built group: ``celery.canvas.group`` vs
``turbogroup.group`` on the same app and broker.

Only ``apply_async`` is timed; building the signatures is not. The queue is
purged before every round, and its depth is read as soon as the call
returns: a call that returns before the broker holds every message (AMQP
without publisher confirms) shows up as fewer than N queued.

Client memory is measured apart, in a fresh interpreter per implementation
(``python -m turbogroup.benchkit.dispatch ...``): memory freed by one run
stays in the allocator's arenas for the next, so in-process whichever
library ran second would look cheaper.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Celery
from celery.canvas import group as celery_group

import turbogroup
from turbogroup.benchkit.timing import PeakRss, Progress, Timing, run_rounds, time_cap
from turbogroup.benchkit.transports import TASK_NAME, Transport
from turbogroup.group import group as turbo_group

IMPLS: dict[str, Callable[..., Any]] = {"celery": celery_group, "turbogroup": turbo_group}


def build(app: Celery, impl: str, n: int) -> Any:
    add = app.tasks[TASK_NAME]
    return IMPLS[impl]([add.s(i, i) for i in range(n)], app=app)


def dispatch_once(
    transport: Transport, app: Celery, impl: str, n: int, max_seconds: float | None
) -> tuple[float, int]:
    """One round: purge, build, time ``apply_async``, count the queue."""
    transport.purge(app)
    sig = build(app, impl, n)
    gc.collect()  # earlier rounds' garbage is not this round's cost
    with time_cap(max_seconds):
        t0 = time.perf_counter()
        result = sig.apply_async()
        elapsed = time.perf_counter() - t0
    queued = transport.depth(app)
    del result, sig
    return elapsed, queued


def run_dispatch(
    transport: Transport,
    app: Celery,
    impl: str,
    n: int,
    rounds: int,
    max_seconds: float | None,
    progress: Progress,
) -> Timing:
    return run_rounds(
        n,
        rounds,
        max_seconds,
        lambda: dispatch_once(transport, app, impl, n, max_seconds),
        f"{transport.name} N={n} {impl}",
        progress,
        show_queued=True,
    )


def probe_rss_kib(transport: Transport, impl: str, n: int, timeout: float | None) -> int | None:
    """Peak client RSS growth (KiB) during one dispatch, in a fresh process."""
    cmd = [sys.executable, "-m", __name__, transport.name, transport.url, transport.queue, impl]
    # The child must import the turbogroup this process runs, wherever that
    # came from (a --target directory, a source tree on sys.path).
    package_root = str(Path(turbogroup.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, *sys.path])}
    try:
        done = subprocess.run(
            [*cmd, str(n)], capture_output=True, text=True, timeout=timeout, check=True, env=env
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return int(json.loads(done.stdout.strip().splitlines()[-1])["rss_growth_kib"])


def _probe_main(argv: list[str]) -> int:
    name, url, queue, impl, n = argv
    transport = Transport(name, url, queue)
    app = transport.make_app()
    transport.purge(app)
    sig = build(app, impl, int(n))
    gc.collect()
    rss = PeakRss()
    result = sig.apply_async()
    growth = rss.growth()
    del result
    transport.purge(app)
    app.close()
    print(json.dumps({"rss_growth_kib": growth}))
    return 0


if __name__ == "__main__":
    sys.exit(_probe_main(sys.argv[1:]))

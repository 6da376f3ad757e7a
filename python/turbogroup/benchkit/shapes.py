"""``python -m turbogroup bench --shapes``: the canvas shapes users
dispatch, Celery against turbogroup in the same run, on a Redis broker and
result backend.

User code is the same on both sides: ``celery.group``, ``celery.chord`` and
``celery.chain`` are looked up when each canvas is built, so the turbogroup
side is ``turbogroup.install()`` with unchanged code and the Celery side is
Celery without it. Only ``apply_async`` is timed (building and freezing
are not). Small groups are dispatched 200 in a row and timed per dispatch,
where the fixed cost of a dispatch shows.

Each turbogroup row also says who built its messages (the dispatch
reports of ``turbogroup.dispatch``): a fast path that quietly handed its
children to Celery shows up there, not only as a poor ratio.

The plain groups' rows have the broker's limit beside them: ``raw-redis``
(``benchkit/raw_redis.py``), the best a plain client does, pushing
Celery's messages for the same children, built beforehand, with redis-py,
one dispatch after another as the others are timed. For a small group that
is one LPUSH's round trip: what no dispatch can go below.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import celery
from celery import Celery

import turbogroup
from turbogroup.benchkit.raw_redis import RawRedisPeer
from turbogroup.benchkit.timing import Progress, Timing, run_rounds
from turbogroup.benchkit.transports import Transport, delete_redis_keys
from turbogroup.publish.report import collected_reports

SMALL_REPEAT = 200


@dataclass(frozen=True)
class Shape:
    name: str
    # (add, tsum, n) -> a canvas of about n tasks, ready to apply_async
    build: Callable[[Any, Any, int], Any]
    repeat: int = 1  # dispatches per timed round
    # children per dispatch when fixed (the small groups'), else the run's N
    size: int | None = None
    # a plain group of add(i, i): raw-redis pushes the same messages
    plain: bool = False

    def children(self, n: int) -> int:
        return n if self.size is None else self.size


def _group(add: Any, tsum: Any, n: int) -> Any:
    del tsum
    return celery.group(add.s(i, i) for i in range(n))


def _frozen_and_saved(add: Any, tsum: Any, n: int) -> Any:
    del tsum
    canvas = celery.group(add.s(i, i) for i in range(n))
    canvas.freeze().save()
    return canvas


SHAPES = (
    Shape("group", _group, plain=True),
    Shape("chord", lambda add, tsum, n: celery.chord([add.s(i, i) for i in range(n)], tsum.s())),
    Shape(
        "generator group | body",
        lambda add, tsum, n: celery.group(add.s(i, i) for i in range(n)) | tsum.s(),
    ),
    Shape(
        "nested groups of 100",
        lambda add, tsum, n: celery.group(
            celery.group(add.s(i, j) for j in range(100)) for i in range(max(1, n // 100))
        ),
    ),
    Shape(
        "group of 2-step chains",
        lambda add, tsum, n: celery.group(
            celery.chain(add.s(i, i), add.s(1)) for i in range(max(1, n // 2))
        ),
    ),
    Shape("frozen, saved group", _frozen_and_saved),
    Shape(
        "group, countdown per child",
        lambda add, tsum, n: celery.group(add.s(i, i).set(countdown=60) for i in range(n)),
    ),
    Shape(
        "2-step chains, steps' options",
        lambda add, tsum, n: celery.group(
            celery.chain(add.s(i, i).set(time_limit=30, expires=600), add.s(1).set(queue="celery"))
            for i in range(max(1, n // 2))
        ),
    ),
    *(
        Shape(f"{SMALL_REPEAT} groups of {k}", _group, SMALL_REPEAT, size=k, plain=True)
        for k in (1, 10, 100)
    ),
)


@dataclass
class ShapeResult:
    shape: Shape
    n: int
    celery: Timing
    turbogroup: Timing
    by_engine: int
    by_celery: int
    raw: Timing | None = None  # raw-redis, for a plain group


def make_app(transport: Transport, backend_url: str, tag: str) -> Celery:
    app = transport.make_app()
    app.conf.update(
        result_backend=backend_url,
        result_backend_transport_options={"global_keyprefix": f"{tag}:"},
    )

    @app.task(name="turbogroup.bench.tsum", shared=False)
    def tsum(values: list[int]) -> int:
        return sum(values)

    return app


def _time_once(transport: Transport, app: Celery, shape: Shape, n: int) -> tuple[float, int]:
    transport.purge(app)
    add, tsum = app.tasks["turbogroup.bench.add"], app.tasks["turbogroup.bench.tsum"]
    canvases = [shape.build(add, tsum, n) for _ in range(shape.repeat)]
    return _timed(transport, app, [canvas.apply_async for canvas in canvases])


def _time_raw_once(
    peer: RawRedisPeer, transport: Transport, app: Celery, n: int, repeat: int
) -> tuple[float, int]:
    transport.purge(app)
    built = [peer.build(n) for _ in range(repeat)]
    return _timed(transport, app, [partial(peer.dispatch, each) for each in built])


def _timed(
    transport: Transport, app: Celery, dispatches: list[Callable[[], Any]]
) -> tuple[float, int]:
    """Seconds per dispatch, one after another, and the queue's depth after."""
    gc.collect()
    t0 = time.perf_counter()
    for dispatch in dispatches:
        dispatch()
    elapsed = (time.perf_counter() - t0) / len(dispatches)
    return elapsed, transport.depth(app)


def _measure(
    transport: Transport, app: Celery, shape: Shape, n: int, rounds: int, progress: Progress
) -> Timing:
    side = "turbogroup" if turbogroup.installed() else "celery"
    once = partial(_time_once, transport, app, shape, n)
    return _rounds(shape, n, rounds, progress, side, once)


def _measure_raw(
    transport: Transport, app: Celery, shape: Shape, n: int, rounds: int, progress: Progress
) -> Timing:
    peer = RawRedisPeer(transport, app)
    try:
        once = partial(_time_raw_once, peer, transport, app, n, shape.repeat)
        return _rounds(shape, n, rounds, progress, "raw-redis", once)
    finally:
        peer.close()


def _rounds(
    shape: Shape,
    n: int,
    rounds: int,
    progress: Progress,
    side: str,
    once: Callable[[], tuple[float, int]],
) -> Timing:
    """One side's timed rounds of ``shape``, ``n`` children a dispatch."""
    label = f"shapes {shape.name} N={n} {side}"
    return run_rounds(n * shape.repeat, rounds, None, once, label, progress)


def run_shapes(
    transport: Transport,
    backend_url: str,
    tag: str,
    n: int,
    rounds: int,
    progress: Progress,
    shapes: tuple[Shape, ...] = SHAPES,
) -> list[ShapeResult]:
    was_installed = turbogroup.installed()
    app = make_app(transport, backend_url, tag)
    out = []
    try:
        for shape in shapes:
            size = shape.children(n)
            turbogroup.uninstall()
            theirs = _measure(transport, app, shape, size, rounds, progress)
            raw = (
                _measure_raw(transport, app, shape, size, rounds, progress) if shape.plain else None
            )
            turbogroup.install()
            with collected_reports() as reports:
                ours = _measure(transport, app, shape, size, rounds, progress)
            runs = max(1, len(ours.seconds) * shape.repeat)  # counts per dispatch
            by_engine = sum(r.by_engine for r in reports) // runs
            by_celery = sum(r.by_celery for r in reports) // runs
            out.append(ShapeResult(shape, size, theirs, ours, by_engine, by_celery, raw))
    finally:
        (turbogroup.install if was_installed else turbogroup.uninstall)()
        transport.cleanup(app)
        delete_redis_keys(backend_url, f"{tag}:*")
        app.close()
    return out


def shape_rows(results: list[ShapeResult]) -> list[list[str]]:
    rows = []
    for r in results:
        per = "dispatch" if r.shape.repeat > 1 else "task"
        scale = 1 if r.shape.repeat > 1 else max(r.n, 1)

        def cell(t: Timing, scale: int = scale) -> str:
            if not t.ok:
                return t.status()
            return f"{min(t.seconds) * 1e6 / scale:.1f}"

        ok = r.celery.ok and r.turbogroup.ok
        ratio = f"{min(r.celery.seconds) / min(r.turbogroup.seconds):.1f}x" if ok else "-"
        raw = "-" if r.raw is None else cell(r.raw)
        # what Celery's time is over the broker's limit: the most any
        # implementation could reach
        bound = "-"
        if r.raw is not None and r.raw.ok and r.celery.ok:
            bound = f"{min(r.celery.seconds) / min(r.raw.seconds):.1f}x"
        n = str(r.n) if r.shape.repeat == 1 else "-"
        built = f"{r.by_engine:,} / {r.by_celery:,}"
        rows.append(
            [
                r.shape.name,
                n,
                f"µs/{per}",
                cell(r.celery),
                cell(r.turbogroup),
                ratio,
                raw,
                bound,
                built,
            ]
        )
    return rows


HEADER = [
    "shape",
    "N",
    "unit",
    "celery",
    "turbogroup",
    "ratio",
    "raw-redis",
    "celery / raw",
    "built: engine / celery",
]

__all__ = ["HEADER", "SHAPES", "Shape", "ShapeResult", "run_shapes", "shape_rows"]

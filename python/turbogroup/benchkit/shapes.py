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
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import celery
from celery import Celery

import turbogroup
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


def _small_group(k: int) -> Callable[[Any, Any, int], Any]:
    def build(add: Any, tsum: Any, n: int) -> Any:
        del tsum, n  # always k children
        return celery.group(add.s(i, i) for i in range(k))

    return build


def _frozen_and_saved(add: Any, tsum: Any, n: int) -> Any:
    del tsum
    canvas = celery.group(add.s(i, i) for i in range(n))
    canvas.freeze().save()
    return canvas


SHAPES = (
    Shape("group", lambda add, tsum, n: celery.group(add.s(i, i) for i in range(n))),
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
    *(Shape(f"{SMALL_REPEAT} groups of {k}", _small_group(k), SMALL_REPEAT) for k in (1, 10, 100)),
)


@dataclass
class ShapeResult:
    shape: Shape
    n: int
    celery: Timing
    turbogroup: Timing
    by_engine: int
    by_celery: int


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
    gc.collect()
    t0 = time.perf_counter()
    for canvas in canvases:
        canvas.apply_async()
    elapsed = (time.perf_counter() - t0) / shape.repeat
    return elapsed, transport.depth(app)


def _measure(
    transport: Transport, app: Celery, shape: Shape, n: int, rounds: int, progress: Progress
) -> Timing:
    return run_rounds(
        n * shape.repeat,
        rounds,
        None,
        lambda: _time_once(transport, app, shape, n),
        f"shapes {shape.name} N={n} {'turbogroup' if turbogroup.installed() else 'celery'}",
        progress,
    )


def run_shapes(
    transport: Transport, backend_url: str, tag: str, n: int, rounds: int, progress: Progress
) -> list[ShapeResult]:
    was_installed = turbogroup.installed()
    app = make_app(transport, backend_url, tag)
    out = []
    try:
        for shape in SHAPES:
            size = n if shape.repeat == 1 else 0
            turbogroup.uninstall()
            theirs = _measure(transport, app, shape, size, rounds, progress)
            turbogroup.install()
            with collected_reports() as reports:
                ours = _measure(transport, app, shape, size, rounds, progress)
            runs = max(1, len(ours.seconds) * shape.repeat)  # counts per dispatch
            by_engine = sum(r.by_engine for r in reports) // runs
            by_celery = sum(r.by_celery for r in reports) // runs
            out.append(ShapeResult(shape, size, theirs, ours, by_engine, by_celery))
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
        n = str(r.n) if r.shape.repeat == 1 else "-"
        built = f"{r.by_engine:,} / {r.by_celery:,}"
        rows.append(
            [r.shape.name, n, f"µs/{per}", cell(r.celery), cell(r.turbogroup), ratio, built]
        )
    return rows


HEADER = ["shape", "N", "unit", "celery", "turbogroup", "ratio", "built: engine / celery"]

__all__ = ["HEADER", "SHAPES", "ShapeResult", "run_shapes", "shape_rows"]

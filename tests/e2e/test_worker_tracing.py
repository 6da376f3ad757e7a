"""Worker-side trace continuation with OpenTelemetry's Celery
instrumentation, a real worker, Redis broker and backend: every task the
worker runs is traced as a child of the PRODUCER span the client made for
its message, in the dispatching trace, with turbogroup's group exactly as
with Celery's (the ``traceparent`` each message carries is the one its own
span injected)."""

from __future__ import annotations

import time

import pytest
from celery import _state
from celery.canvas import group as celery_group

from tests.otel import instrumented
from turbogroup import group as turbo_group

pytest.importorskip("opentelemetry.sdk.trace")
pytestmark = pytest.mark.redis
N = 40


@pytest.fixture
def traced(worker_app):
    """The worker's app current (the instrumentation finds tasks by name
    in it), and the instrumentation on for this test only, spans kept in
    memory."""
    previous = _state.get_current_app()
    worker_app.set_current()
    try:
        with instrumented("tg-e2e") as tracer_and_exporter:
            yield tracer_and_exporter
    finally:
        _state._set_current_app(previous)


def spans_by_task(exporter, prefix: str, count: int, timeout: float = 20.0) -> dict:
    """The finished spans named ``prefix...``, by task id, once ``count``
    of them are there (a task's span ends just after its result is stored)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            s.attributes.get("messaging.message.id"): s
            for s in exporter.get_finished_spans()
            if s.name.startswith(prefix)
        }
        found.pop(None, None)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("impl", [celery_group, turbo_group], ids=["celery", "turbogroup"])
def test_worker_spans_continue_the_dispatching_trace(
    worker_app, tasks, traced, impl, dispatch_reports
):
    tracer, exporter = traced
    add = tasks["add"]
    with tracer.start_as_current_span("dispatch") as parent:
        res = impl([add.s(i, i) for i in range(N)], app=worker_app).apply_async()
    assert res.get(timeout=60) == [2 * i for i in range(N)]
    ids = [r.id for r in res.results]
    producers = spans_by_task(exporter, "apply_async/", N)
    runs = spans_by_task(exporter, "run/", N)
    assert set(producers) == set(runs) == set(ids)
    trace_id = parent.get_span_context().trace_id
    for task_id in ids:
        producer, run = producers[task_id], runs[task_id]
        assert producer.parent.span_id == parent.get_span_context().span_id
        assert run.context.trace_id == producer.context.trace_id == trace_id
        assert run.parent.span_id == producer.context.span_id
    reports = dispatch_reports()
    if impl is turbo_group:  # one bulk dispatch, every message built by the encoder
        assert [(r.by_engine, r.by_celery) for r in reports] == [(N, 0)]
    else:
        assert reports == []

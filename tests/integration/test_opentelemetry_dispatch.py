"""OpenTelemetry's Celery instrumentation (``CeleryInstrumentor``) connects
``before_task_publish``/``after_task_publish`` receivers: one PRODUCER span
per task, its context injected as ``traceparent`` into the message. With
turbogroup's group the tracer sees what it sees with Celery's: the same
spans, each child of the dispatching span, each span's id in its own
message's ``traceparent``, every span ended (``after_task_publish`` fired
for every message).
"""

from __future__ import annotations

import json

import pytest
from celery.canvas import group as celery_group

from turbogroup import group as turbo_group

otel_sdk = pytest.importorskip("opentelemetry.sdk.trace")
pytestmark = pytest.mark.redis
N = 120


@pytest.fixture
def tracer():
    """A tracer provider exporting to memory, the instrumentation on for
    the test only (its receivers would turn batching off for the rest)."""
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = otel_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider.get_tracer("tg-test"), exporter
    finally:
        instrumentor.uninstrument()


def dispatch(impl, env, tracer):
    app, add, queue, broker = env
    otel_tracer, exporter = tracer
    exporter.clear()
    broker.delete(queue)
    sig = impl([add.s(i, i) for i in range(N)], app=app)
    with otel_tracer.start_as_current_span("dispatch") as parent:
        sig.apply_async()
    messages = [json.loads(m) for m in broker.lrange(queue, 0, -1)[::-1]]
    broker.delete(queue)
    producers = [s for s in exporter.get_finished_spans() if s.name.startswith("apply_async/")]
    return parent.get_span_context(), messages, producers


@pytest.mark.parametrize("impl", [celery_group, turbo_group], ids=["celery", "turbogroup"])
def test_producer_spans_match_the_injected_headers(redis_add_env, tracer, impl):
    parent, messages, spans = dispatch(impl, redis_add_env, tracer)
    assert len(messages) == len(spans) == N
    by_task = {s.attributes["messaging.message.id"]: s for s in spans}
    for message in messages:
        span = by_task[message["headers"]["id"]]
        version, trace_id, span_id, flags = message["headers"]["traceparent"].split("-")
        assert int(trace_id, 16) == parent.trace_id == span.context.trace_id
        assert int(span_id, 16) == span.context.span_id
        assert span.parent.span_id == parent.span_id  # not nested in each other
        assert span.end_time is not None


def test_turbogroup_messages_and_spans_equal_celerys(redis_add_env, tracer):
    _, celery_messages, celery_spans = dispatch(celery_group, redis_add_env, tracer)
    _, turbo_messages, turbo_spans = dispatch(turbo_group, redis_add_env, tracer)
    assert [sorted(m["headers"]) for m in turbo_messages] == [
        sorted(m["headers"]) for m in celery_messages
    ]
    assert [(s.name, s.kind, sorted(s.attributes)) for s in turbo_spans] == [
        (s.name, s.kind, sorted(s.attributes)) for s in celery_spans
    ]

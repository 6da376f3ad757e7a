"""OpenTelemetry's Celery instrumentation (``CeleryInstrumentor``) connects
``before_task_publish``/``after_task_publish`` receivers: one PRODUCER span
per task, its context injected as ``traceparent`` into the message. With
turbogroup's group the tracer sees what it sees with Celery's: the same
spans, each child of the dispatching span, each span's id in its own
message's ``traceparent``, every span ended (``after_task_publish`` fired
for every message). And the dispatch stays one bulk dispatch: the
receivers run for each message with Celery's arguments, the encoder builds
the message they leave, and the messages are sent in batches, each
``after_task_publish`` sent once its message is in Redis, in dispatch
order.
"""

from __future__ import annotations

import json

import pytest
from celery import _state, signals
from celery.canvas import group as celery_group
from kombu.exceptions import EncodeError

from tests.otel import instrumented
from turbogroup import group as turbo_group

pytest.importorskip("opentelemetry.sdk.trace")
pytestmark = pytest.mark.redis
N = 120


@pytest.fixture
def env(redis_add_env):
    """The app made current, as a user's is: the instrumentation looks the
    task up by name in the current app and keeps each PRODUCER span on it
    between the two signals (without it, a span ends when dropped)."""
    app = redis_add_env[0]
    previous = _state.get_current_app()
    app.set_current()
    yield redis_add_env
    _state._set_current_app(previous)


@pytest.fixture
def tracer():
    with instrumented("tg-test") as tracer_and_exporter:
        yield tracer_and_exporter


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
def test_producer_spans_match_the_injected_headers(env, tracer, impl):
    parent, messages, spans = dispatch(impl, env, tracer)
    assert len(messages) == len(spans) == N
    by_task = {s.attributes["messaging.message.id"]: s for s in spans}
    for message in messages:
        span = by_task[message["headers"]["id"]]
        version, trace_id, span_id, flags = message["headers"]["traceparent"].split("-")
        assert int(trace_id, 16) == parent.trace_id == span.context.trace_id
        assert int(span_id, 16) == span.context.span_id
        assert span.parent.span_id == parent.span_id  # not nested in each other
        assert span.end_time is not None


def test_turbogroup_batches_and_sends_after_publish_once_sent(env, tracer, dispatch_reports):
    app, add, queue, broker = env
    app.conf.turbogroup_batch_size = 50
    seen = []

    def after(sender=None, headers=None, **kwargs):
        # the message is in Redis already, and so are all before it
        seen.append((headers["id"], broker.llen(queue)))

    signals.after_task_publish.connect(after)
    try:
        parent, messages, spans = dispatch(turbo_group, env, tracer)
    finally:
        signals.after_task_publish.disconnect(after)
    ids = [m["headers"]["id"] for m in messages]
    assert [task_id for task_id, _ in seen] == ids
    assert all(queued >= k + 1 for k, (_, queued) in enumerate(seen))
    assert seen[0][1] >= 50  # the first step's messages were sent together
    assert [(r.by_engine, r.by_celery) for r in dispatch_reports()] == [(N, 0)]
    assert len(spans) == N and all(s.parent.span_id == parent.span_id for s in spans)


def test_a_raising_receiver_is_logged_and_its_message_sent_as_with_celery(env, tracer, caplog):
    def broken(**kwargs):
        raise RuntimeError("receiver failed")

    signals.before_task_publish.connect(broken)
    try:
        _, messages, spans = dispatch(turbo_group, env, tracer)
    finally:
        signals.before_task_publish.disconnect(broken)
    assert len(messages) == len(spans) == N
    assert sum("receiver failed" in r.getMessage() for r in caplog.records) == N


def test_all_or_nothing_holds_with_a_tracer(env, tracer):
    app, add, queue, broker = env
    otel_tracer, exporter = tracer
    broker.delete(queue)
    exporter.clear()
    children = [add.s(i, i) for i in range(N)]
    children[N // 2] = add.s(object(), 1)  # the serializer rejects it
    with pytest.raises(EncodeError):
        with otel_tracer.start_as_current_span("dispatch"):
            turbo_group(children, app=app).apply_async()
    assert broker.llen(queue) == 0
    # no after_task_publish for messages never sent: no PRODUCER span ended
    assert not [s for s in exporter.get_finished_spans() if s.name.startswith("apply_async/")]


def test_turbogroup_messages_and_spans_equal_celerys(env, tracer):
    _, celery_messages, celery_spans = dispatch(celery_group, env, tracer)
    _, turbo_messages, turbo_spans = dispatch(turbo_group, env, tracer)
    assert [sorted(m["headers"]) for m in turbo_messages] == [
        sorted(m["headers"]) for m in celery_messages
    ]
    assert [(s.name, s.kind, sorted(s.attributes)) for s in turbo_spans] == [
        (s.name, s.kind, sorted(s.attributes)) for s in celery_spans
    ]

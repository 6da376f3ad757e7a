"""Celery's publish signals on RabbitMQ: a tracer's receivers keep the
dispatch batched and confirmed. ``before_task_publish`` runs as Celery's
publish builds each message; ``after_task_publish`` is held until the
message is acked, then sent in dispatch order; a message not acked gets
none, until ``resume()`` has it acked."""

from __future__ import annotations

import pytest
from celery import _state, signals
from celery.canvas import group as celery_group

from tests.integration.amqp_env import (
    message_count,
    take_messages,
    with_ids,
)
from tests.integration.celery_wire import FIXED_NOW, Level
from tests.integration.test_publish_signal_arguments import RECEIVERS, Recorder
from tests.otel import instrumented
from turbogroup import group
from turbogroup.errors import PublishError

pytest.importorskip("opentelemetry.sdk.trace")
pytestmark = pytest.mark.amqp
N = 300


@pytest.fixture
def current(make_app):
    """An app made current, as a user's is: the instrumentation keeps each
    PRODUCER span on the current app's task between the two signals."""
    app = make_app()
    app.conf.turbogroup_batch_size = 100
    previous = _state.get_current_app()
    app.set_current()
    yield app
    _state._set_current_app(previous)


def test_a_tracer_keeps_the_dispatch_batched_and_spans_match_the_headers(current, dispatch_reports):
    app = current
    queue = app.queue_names[0]
    seen = []

    def after(headers=None, **kwargs):
        # acked, so queued, and so is every message before it
        seen.append((headers["id"], message_count(app, queue)))

    with instrumented("tg-amqp") as (tracer, exporter):
        signals.after_task_publish.connect(after)
        try:
            with tracer.start_as_current_span("dispatch") as parent:
                result = group(app.add.s(i, i) for i in range(N)).apply_async()
        finally:
            signals.after_task_publish.disconnect(after)
        spans = [s for s in exporter.get_finished_spans() if s.name.startswith("apply_async/")]
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("amqp", N, 0)
    ids = [r.id for r in result.results]
    assert [task_id for task_id, _ in seen] == ids
    assert all(queued >= k + 1 for k, (_, queued) in enumerate(seen))
    messages = take_messages(app, queue)
    assert [m["headers"]["id"] for m in messages] == ids
    by_task = {s.attributes["messaging.message.id"]: s for s in spans}
    assert len(by_task) == N
    for message in messages:
        span = by_task[message["headers"]["id"]]
        _, trace_id, span_id, _ = message["headers"]["traceparent"].split("-")
        assert int(trace_id, 16) == parent.get_span_context().trace_id
        assert int(span_id, 16) == span.context.span_id
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.end_time is not None


def test_nacked_messages_get_no_after_publish_until_resumed(make_app):
    # RabbitMQ nacks every publish past max-length with reject-publish.
    app = make_app({"x-max-length": 150, "x-overflow": "reject-publish"})
    app.conf.turbogroup_batch_size = 100
    queue = app.queue_names[0]
    sigs, ids = with_ids(app, N)
    before, after = [], []

    def on_before(headers=None, **kwargs):
        before.append(headers["id"])

    def on_after(headers=None, **kwargs):
        after.append(headers["id"])

    signals.before_task_publish.connect(on_before)
    signals.after_task_publish.connect(on_after)
    try:
        with pytest.raises(PublishError) as info:
            group(sigs).apply_async()
        assert before == ids  # every message built, as Celery builds it
        assert after == ids[:150]  # only the acked ones, in order
        assert info.value.unconfirmed_ids == ids[150:]
        take_messages(app, queue)  # room for the rest
        info.value.resume()
        assert before == ids  # resent as built: no second before_task_publish
        assert after == ids
    finally:
        signals.before_task_publish.disconnect(on_before)
        signals.after_task_publish.disconnect(on_after)
    assert message_count(app, queue) == N - 150


@pytest.mark.parametrize("receiver", list(RECEIVERS))
def test_receivers_get_celerys_arguments_and_rabbitmq_celerys_messages(
    make_app,
    dispatch_reports,
    receiver,
):
    """Each child's message is resolved by turbogroup and published by
    kombu between the signals: the receivers get Celery's arguments (dict
    order included), and what they leave is the message RabbitMQ gets."""
    app = make_app(extra_queue="routed")
    app.now = lambda: FIXED_NOW  # the countdown children's eta
    add, other = app.add, app.other

    def children():
        return [
            *(add.s(i, i).set(task_id=f"a-{i}") for i in range(20)),
            *(add.s(i, y=i).set(priority=4, task_id=f"p-{i}") for i in range(3)),
            *(other.s(f"routed {i}").set(task_id=f"o-{i}") for i in range(2)),
            add.s(Level.HIGH).set(task_id="level"),  # reprs the encoder leaves to Celery
            *(add.s(i).set(countdown=5, task_id=f"c-{i}") for i in range(2)),
        ]

    def dispatch(cls):
        with Recorder(RECEIVERS[receiver][0]) as recorder:
            cls(children()).apply_async(
                (100,), headers={"custom": "yes"}, priority=3, task_id="group-id"
            )
        messages = [take_messages(app, queue) for queue in app.queue_names]
        return recorder.calls, messages

    ours = dispatch(group)
    (report,) = dispatch_reports()
    # a countdown is Celery's to send (its native delayed delivery on RabbitMQ)
    assert (report.by_engine, report.by_celery) == (25, 3)
    theirs = dispatch(celery_group)
    assert theirs[0]["before"], "Celery sent no signal: the case is broken"
    assert [len(m) for m in theirs[1]] == [26, 2]
    assert ours == theirs

"""Alike children between publish signal receivers on RabbitMQ, turbogroup
vs Celery, as RabbitMQ holds them (body bytes, header and property order).

When a tracer's ``before_task_publish`` receiver only adds headers, each
child alike its kind's first one is recorded by its kind's recipe
(``publish/amqp_records.py``) instead of kombu's ``Producer.publish``.
These tests hold that to Celery's messages, check that it did the work
(kombu's publish ran once, for the kind's first child) and that a receiver
doing anything more sends each message through kombu, as before.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from amqp.exceptions import FrameSyntaxError
from celery import signals
from celery.canvas import group as celery_group

from tests.integration.amqp_env import Delivered, take_deliveries
from tests.integration.test_signalled_alike_headers import (
    _args_changed_in_place,
    _retries_changed,
    _traces,
)
from turbogroup import group as turbo_group
from turbogroup.publish.deferred import DeferringProducer

pytestmark = pytest.mark.amqp
N = 60


def _counts(headers, **_):
    _traces(headers)
    headers["attempt"] = headers["group_index"]  # an int: its table is checked whole


def _changes_a_property(headers, properties, **_):
    _traces(headers)
    properties["app_id"] = "tracer"


# receiver -> how many messages kombu's publish records
RECEIVERS = {
    "adds-str-headers": (_traces, 1),
    "adds-an-int-header": (_counts, 1),
    # the message keeps the repr Celery computed before the receivers
    "changes-kwargs-in-place": (_args_changed_in_place, 1),
    "changes-a-property": (_changes_a_property, N),
    "changes-a-standard-header": (_retries_changed, N),
}


@pytest.fixture
def kombu_publishes(monkeypatch):
    """How many messages the recording producer took from kombu's publish."""
    count = [0]
    original = DeferringProducer.publish_by

    def counting(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DeferringProducer, "publish_by", counting)
    return count


def _raw(app, queue: str) -> list[tuple[Any, ...]]:
    """Every message in ``queue`` (removed) as RabbitMQ delivers it, its
    headers' and properties' order included."""
    return [
        (*m[:2], m.body, list(m.headers.items()), list(m.properties.items()))
        for m in map(Delivered.of, take_deliveries(app, queue))
    ]


def _dispatched(impl, app, receiver):
    signals.before_task_publish.connect(receiver)
    try:
        children = (app.add.s(i, i).set(task_id=f"a-{i}") for i in range(N))
        impl(children).apply_async(task_id="group-id")
    finally:
        signals.before_task_publish.disconnect(receiver)
    return _raw(app, app.queue_names[0])


@pytest.mark.parametrize("receiver", list(RECEIVERS))
def test_alike_children_with_added_headers_are_celerys_messages(
    make_app, dispatch_reports, kombu_publishes, receiver
):
    change, through_kombu = RECEIVERS[receiver]
    app = make_app()
    ours = _dispatched(turbo_group, app, change)
    assert kombu_publishes[0] == through_kombu
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("amqp", N, 0)
    theirs = _dispatched(celery_group, app, change)
    assert len(theirs) == N
    assert all(("traceparent", f"00-{i:032}-{'0' * 16}-01") in m[3] for i, m in enumerate(theirs))
    assert ours == theirs


def _unwritable_header(headers):
    headers["span"] = object()  # py-amqp has no type for it


# what makes the 41st child's message one py-amqp cannot write, and the
# error it raises then
UNWRITABLE = {
    "header of no AMQP type": (_unwritable_header, "a-40", FrameSyntaxError, "key b'span'"),
    "id over a short string": (lambda h: None, "x" * 300, struct.error, "0 <= number <= 255"),
}


@pytest.mark.parametrize("case", list(UNWRITABLE))
def test_a_message_py_amqp_cannot_write_leaves_nothing_sent(make_app, kombu_publishes, case):
    change, bad_id, error, match = UNWRITABLE[case]
    app = make_app()
    queue = app.queue_names[0]
    with app.connection_for_write() as conn:  # so that an empty queue can be read
        app.amqp.queues[queue].bind(conn.default_channel).declare()
    seen = []

    def receiver(headers, **_):
        seen.append(headers["group_index"])
        _traces(headers)
        if headers["group_index"] == 40:
            change(headers)

    ids = [f"a-{i}" if i != 40 else bad_id for i in range(N)]
    signals.before_task_publish.connect(receiver)
    try:
        with pytest.raises(error, match=match) as raised:
            turbo_group(app.add.s(i, i).set(task_id=ids[i]) for i in range(N)).apply_async()
    finally:
        signals.before_task_publish.disconnect(receiver)
    (note,) = raised.value.__notes__
    assert note.endswith("child #40 (task 't.add'); no message of the group was sent")
    assert seen == list(range(41))  # the fault happened at the 41st child
    assert kombu_publishes[0] == 1  # the others were recorded by the recipe
    assert _raw(app, queue) == []

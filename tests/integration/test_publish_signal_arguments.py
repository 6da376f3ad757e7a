"""Publish signal receivers on the encoder's path, turbogroup vs Celery 5.7.0.

A receiver of ``before_task_publish`` (a tracer's) gets each message's
headers, properties, body, exchange, routing key, declarations and retry
policy, and what it adds to them is in the message. With turbogroup the
encoder builds those messages: the receivers must get exactly Celery's
arguments (dict order included), ``after_task_publish`` must follow for
the same messages in the same order, and Redis must receive the same
bytes. A receiver that changes more than the headers sends that message
through kombu's publish, as Celery's ``send_task_message`` does.
"""

from __future__ import annotations

import json
import re

import pytest
from celery import signals
from celery.canvas import group as celery_group

from tests.integration.celery_wire import Level, dispatch, drain, normalized
from tests.integration.group_cases import CASES, PLAIN_CASES
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _adds_a_header(headers, properties):
    headers["x-trace"] = f"t-{headers['id']}"


def _changes_properties(headers, properties):
    headers["x-trace"] = f"t-{headers['id']}"
    properties["x-prop"] = 1  # kombu puts it in the message's properties


def _removes_a_header(headers, properties):
    headers.pop("shadow")
    headers["shadow"] = "moved"  # now last: the encoder's order is not this


def _adds_a_header_the_encoder_leaves_to_kombu(headers, properties):
    headers["x-level"] = Level.HIGH  # found when the step is sealed


RECEIVERS = {
    "adds-a-header": (_adds_a_header, "engine"),
    "adds-an-enum-header": (_adds_a_header_the_encoder_leaves_to_kombu, "kombu"),
    "changes-properties": (_changes_properties, "kombu"),
    "removes-a-header": (_removes_a_header, "kombu"),
}


class Recorder:
    """Every publish signal's arguments, as they were when it was sent:
    each signal's in order (``after_task_publish`` is held until the
    message is sent, so the two interleave differently from Celery's)."""

    def __init__(self, change):
        self.change = change
        self.calls = {"before": [], "after": []}

    def before(self, sender=None, body=None, exchange=None, routing_key=None, headers=None,
               properties=None, declare=None, retry_policy=None, **kwargs):  # fmt: skip
        self.calls["before"].append((
            sender, repr(body), exchange, routing_key, repr(list(headers.items())),
            repr(list(properties.items())), repr([getattr(q, "name", q) for q in declare or ()]),
            repr(list(retry_policy.items())),
        ))  # fmt: skip
        self.change(headers, properties)

    def after(self, sender=None, body=None, headers=None, exchange=None, routing_key=None, **kw):
        self.calls["after"].append((sender, repr(body), repr(list(headers.items())), exchange,
                           routing_key))  # fmt: skip

    def __enter__(self):
        signals.before_task_publish.connect(self.before)
        signals.after_task_publish.connect(self.after)
        return self

    def __exit__(self, *exc):
        signals.before_task_publish.disconnect(self.before)
        signals.after_task_publish.disconnect(self.after)


def run(impl, build, environment, options, change):
    app, tasks, queues, client = environment
    with Recorder(change) as recorder:
        dispatch(impl, build, app, tasks, options)
    return recorder.calls, drain(client, queues)


@pytest.mark.parametrize("receiver", list(RECEIVERS))
@pytest.mark.parametrize("case", ["plain", "task-options", "group-options", "links",
                                  "alike-and-different-children",
                                  "celery-built-children-keep-their-place"])  # fmt: skip
def test_receivers_get_celerys_arguments_and_redis_celerys_bytes(
    wire_env,
    dispatch_reports,
    case,
    receiver,
):
    change, path = RECEIVERS[receiver]
    build, options = CASES[case]
    drain(wire_env[3], wire_env[2])
    their_calls, theirs = run(celery_group, build, wire_env, options, change)
    our_calls, ours = run(turbo_group, build, wire_env, options, change)
    assert their_calls["before"], "Celery sent no signal: the case is broken"
    assert our_calls == their_calls
    assert {k: [normalized(m) for m in v] for k, v in ours.items()} == {
        k: [normalized(m) for m in v] for k, v in theirs.items()
    }
    (report,) = dispatch_reports()
    if path == "kombu":
        assert report.by_engine == 0
    elif case == "plain":
        assert (report.by_engine, report.by_celery) == (5, 0)


def _own_ids(calls):
    """The calls with each message's own (random) id replaced."""
    return {
        signal: [UUID.sub("<id>", repr(call)) for call in each] for signal, each in calls.items()
    }


@pytest.mark.parametrize("case", ["alike", "kinds", "immutable-routed-clocked",
                                  "unencodable-alike-child"])  # fmt: skip
def test_plain_children_between_receivers_match_celery(wire_env, dispatch_reports, case):
    build, options = PLAIN_CASES[case]
    drain(wire_env[3], wire_env[2])
    their_calls, theirs = run(celery_group, build, wire_env, options, _adds_a_header)
    our_calls, ours = run(turbo_group, build, wire_env, options, _adds_a_header)
    assert _own_ids(our_calls) == _own_ids(their_calls)

    def plain(raw):
        own_id = json.loads(raw)["headers"]["id"]
        return normalized(raw).replace(own_id.encode(), b"<id>")

    assert {k: [plain(m) for m in v] for k, v in ours.items()} == {
        k: [plain(m) for m in v] for k, v in theirs.items()
    }
    (report,) = dispatch_reports()
    total = sum(len(v) for v in theirs.values())
    # only the values the encoder leaves to kombu go through Celery
    assert report.by_engine + report.by_celery == total
    assert report.by_engine >= total - 2


def _writes_to_the_body_kwargs(sender=None, body=None, **kwargs):
    body[1]["written"] = True


@pytest.mark.parametrize("impl", [celery_group, turbo_group])
def test_a_receiver_writing_to_a_message_leaves_the_signatures_alone(
    wire_env, dispatch_reports, impl
):
    # Celery's message holds a copy of each signature's kwargs (clone);
    # without receivers the fast path reads the signature's own dict.
    app, tasks, queues, client = wire_env
    drain(client, queues)
    children = [tasks["add"].s(i, y=i) for i in range(20)]
    signals.before_task_publish.connect(_writes_to_the_body_kwargs)
    try:
        impl(children, app=app).apply_async()
    finally:
        signals.before_task_publish.disconnect(_writes_to_the_body_kwargs)
    assert [child.kwargs for child in children] == [{"y": i} for i in range(20)]
    sent = [json.loads(m) for each in drain(client, queues).values() for m in each]
    assert len(sent) == 20
    if impl is turbo_group:
        (report,) = dispatch_reports()
        assert report.by_engine == 20  # the fast path's messages, between the receivers

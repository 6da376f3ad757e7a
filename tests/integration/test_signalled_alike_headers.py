"""Alike children between publish signal receivers, turbogroup vs Celery.

A tracer's ``before_task_publish`` receiver adds headers to each message
(its trace context) and changes nothing else. Each child alike its kind's
first one then stays an alike child on the Redis fast path, with the added
headers as its own, and the encoder writes it from the kind's template.
These tests hold that path to Celery's bytes (order included), check that
it did the work (the headers reach the encoder with the alike children),
and that a receiver doing anything more to a child's message sends that
message whole, as before. The children after the first are queued by the
Rust loop and handed to the signals in order.
"""

from __future__ import annotations

import json

import pytest
from celery import signals
from celery.canvas import group as celery_group

from tests.integration.celery_wire import dispatch, drain, normalized_plain
from turbogroup import group as turbo_group
from turbogroup.publish import redis_encode

pytestmark = pytest.mark.redis
N = 60


def _traces(headers, **_):
    headers["traceparent"] = f"00-{headers['group_index']:032}-{'0' * 16}-01"
    headers["tracestate"] = 'tg=é"1'


def _retries_changed(headers, **_):
    _traces(headers)
    headers["retries"] = 1


def _timelimit_changed_in_place(headers, **_):
    _traces(headers)
    headers["timelimit"][0] = 30


def _args_changed_in_place(body, headers, **_):
    _traces(headers)
    body[1]["seen"] = True  # after Celery computed the kwargs' repr


RECEIVERS = {
    "adds-headers": (_traces, N - 1),
    "changes-a-standard-header": (_retries_changed, 0),
    "changes-timelimit-in-place": (_timelimit_changed_in_place, 0),
    "changes-kwargs-in-place": (_args_changed_in_place, 0),
}


@pytest.fixture
def encoded_headers(monkeypatch):
    """How many alike children reached the encoder with headers of their
    own, at the check and at the send."""
    seen = {"check": 0, "send": 0}
    core = redis_encode._core

    class Counting:
        def __getattr__(self, name):
            return getattr(core, name)

        def encode_alike_messages(self, template, items, *args, headers=None, **kwargs):
            if kwargs.get("check"):
                seen["check"] += sum(h is not None for h in headers or ())
            return core.encode_alike_messages(template, items, *args, headers=headers, **kwargs)

        def lpush_alike_command(self, key, template, items, *args, headers=None, **kwargs):
            seen["send"] += sum(h is not None for h in headers or ())
            return core.lpush_alike_command(key, template, items, *args, headers=headers, **kwargs)

    monkeypatch.setattr(redis_encode, "_core", Counting())
    return seen


def _children(g, tasks):
    return g(tasks["add"].s(i, i).set(time_limit=60) for i in range(N))


def _dispatched(impl, environment, receiver):
    app, tasks, queues, client = environment
    signals.before_task_publish.connect(receiver)
    try:
        dispatch(impl, _children, app, tasks, {})
    finally:
        signals.before_task_publish.disconnect(receiver)
    return drain(client, queues)


@pytest.mark.parametrize("receiver", list(RECEIVERS))
def test_alike_children_with_added_headers_are_celerys_bytes(
    wire_env, dispatch_reports, encoded_headers, receiver
):
    change, headed = RECEIVERS[receiver]
    drain(wire_env[3], wire_env[2])
    theirs = _dispatched(celery_group, wire_env, change)
    assert sum(map(len, theirs.values())) == N
    ours = _dispatched(turbo_group, wire_env, change)
    assert {k: [normalized_plain(m) for m in v] for k, v in ours.items()} == {
        k: [normalized_plain(m) for m in v] for k, v in theirs.items()
    }
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (N, 0)
    # all but the kind's first child queued by the Rust loop, then signalled
    assert report.looped == N - 1
    # the first child is its kind's template, sent whole
    assert encoded_headers == {"check": headed, "send": headed}
    if headed:
        (queue,) = (v for v in ours.values() if v)
        last = json.loads(queue[-1])["headers"]
        assert list(last)[-2:] == ["traceparent", "tracestate"]


def test_a_bad_child_after_a_looped_run_stops_the_signals_where_celery_does(wire_env):
    app, tasks, queues, client = wire_env
    fired = {}

    def bad_in_the_middle(g, t):
        sigs = [t["add"].s(i, i) for i in range(N)]
        sigs[37] = t["add"].s(1, 2, 3)  # Task.apply_async's typing check raises
        return g(sigs)

    for impl in (celery_group, turbo_group):
        indexes = fired[impl] = []

        def receiver(headers, indexes=indexes, **_):
            indexes.append(headers["group_index"])
            _traces(headers)

        signals.before_task_publish.connect(receiver)
        try:
            with pytest.raises(TypeError, match="takes from 1 to 2 positional arguments"):
                dispatch(impl, bad_in_the_middle, app, tasks, {})
        finally:
            signals.before_task_publish.disconnect(receiver)
        sent = drain(client, queues)
        # Celery sent the children before the bad one; turbogroup nothing
        assert sum(map(len, sent.values())) == (37 if impl is celery_group else 0)
    assert fired[turbo_group] == fired[celery_group] == list(range(37))

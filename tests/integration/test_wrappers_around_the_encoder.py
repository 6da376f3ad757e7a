"""A tracer's wrappers of ``Task.apply_async``, ``Celery.send_task`` and
kombu's ``Producer.publish``, run around the encoder's messages, against
Celery's group under the same wrappers.

The wrappers here have sentry-sdk's shape (a function closing over the
method it replaced) and leave a trace that is the same in both runs: a
header per wrapper, named by the child's group index, and a log of each
call. The messages must be Celery's bytes, in Celery's order; every
wrapper must run once per child, in Celery's order; and where a wrapper
changes what it passes on beyond the headers, that child's message must
be Celery's own publish (the report counts it), still once.
"""

from __future__ import annotations

import json
import re

import pytest
from celery import Celery
from celery.app.task import Task
from celery.canvas import group as celery_group
from kombu import Producer

from tests.integration.amqp_env import take_messages
from tests.integration.celery_wire import dispatch, drain, normalized_plain
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis
N = 60
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Tracer:
    """Three wrappers of sentry-sdk's shape; ``hooks`` may change a call
    (``(args, kwargs)``) before it is passed on."""

    def __init__(self, monkeypatch, **hooks):
        self.log = []
        self.hooks = hooks
        monkeypatch.setattr(Task, "apply_async", self._wrap("apply_async", Task.apply_async))
        monkeypatch.setattr(Celery, "send_task", self._wrap("send_task", Celery.send_task))
        monkeypatch.setattr(Producer, "publish", self._wrap("publish", Producer.publish))

    def _wrap(self, name, original):
        log, hook = self.log, self.hooks.get(name)

        def wrapper(*args, **kwargs):
            headers = kwargs.get("headers") or {}
            index = headers.get("group_index", kwargs.get("group_index"))
            # the publish wrapper sees the message's headers: their names too
            log.append((name, index) if name != "publish" else (name, index, tuple(headers)))
            if name != "publish":  # as Sentry does: a copy, with its header
                kwargs["headers"] = dict(headers, **{f"x-{name}": f"{name}-{index}"})
            # how many times it calls on (1 unless a hook says otherwise)
            calls = hook(index, args, kwargs) if hook is not None else None
            result = None
            for _ in range(1 if calls is None else calls):
                result = original(*args, **kwargs)
            return result

        return wrapper


def _children(g, tasks):
    return g(tasks["add"].s(i, i) for i in range(N))


def _run(impl, wire_env, monkeypatch, build=_children, **hooks):
    app, tasks, queues, client = wire_env
    with monkeypatch.context() as patched:
        tracer = Tracer(patched, **hooks)
        dispatch(impl, build, app, tasks, {})
    sent = drain(client, queues)
    return {k: [normalized_plain(m) for m in v] for k, v in sent.items()}, tracer.log


def _both(wire_env, monkeypatch, dispatch_reports, build=_children, **hooks):
    drain(wire_env[3], wire_env[2])
    theirs, their_log = _run(celery_group, wire_env, monkeypatch, build, **hooks)
    ours, our_log = _run(turbo_group, wire_env, monkeypatch, build, **hooks)
    assert ours == theirs
    assert our_log == their_log
    (report,) = dispatch_reports()
    return ours, our_log, report


def test_wrapped_children_are_celerys_bytes_built_by_the_encoder(
    wire_env, monkeypatch, dispatch_reports
):
    ours, log, report = _both(wire_env, monkeypatch, dispatch_reports)
    assert sum(map(len, ours.values())) == N
    assert [entry[:2] for entry in log] == [
        (name, i) for i in range(N) for name in ("apply_async", "send_task", "publish")
    ]
    assert log[2][2][-2:] == ("x-apply_async", "x-send_task")
    # every message by the encoder, all but the first queued by the Rust loop
    assert (report.by_engine, report.by_celery, report.looped) == (N, 0, N - 1)
    (queue,) = ours.values()
    assert b'"x-apply_async": "apply_async-7", "x-send_task": "send_task-7"}' in queue[7]


def test_a_wrapper_changing_an_option_gets_celerys_publish_for_that_child(
    wire_env, monkeypatch, dispatch_reports
):
    def priority_for_odd(index, args, kwargs):
        if index % 2:
            kwargs["priority"] = 3

    ours, _, report = _both(wire_env, monkeypatch, dispatch_reports, apply_async=priority_for_odd)
    assert sorted(map(len, ours.values())) == [N // 2, N // 2]  # two priority lists
    assert (report.by_engine, report.by_celery) == (N // 2, N // 2)


def test_a_publish_wrapper_changing_the_headers_gets_kombus_publish(
    wire_env, monkeypatch, dispatch_reports
):
    def header_for_every_third(index, args, kwargs):
        if index % 3 == 0:
            kwargs["headers"]["x-late"] = index  # in place: Celery's dict

    ours, _, report = _both(wire_env, monkeypatch, dispatch_reports, publish=header_for_every_third)
    assert sum(map(len, ours.values())) == N
    assert (report.by_engine, report.by_celery) == (N - N // 3, N // 3)


def test_a_value_only_kombu_writes_is_published_by_kombu_after_the_wrappers(
    wire_env, monkeypatch, dispatch_reports
):
    deep: list = []
    for _ in range(250):  # deeper than the encoder writes; kombu's JSON does
        deep = [deep]

    def with_a_deep_list(g, tasks):
        return g(tasks["add"].s(i, deep if i == 5 else i) for i in range(N))

    ours, log, report = _both(wire_env, monkeypatch, dispatch_reports, build=with_a_deep_list)
    assert sum(map(len, ours.values())) == N
    assert len(log) == 3 * N  # each wrapper once per child, that one's too
    assert (report.by_engine, report.by_celery) == (N - 1, 1)


@pytest.mark.parametrize("calls", [2, 0])
def test_a_wrapper_calling_on_twice_or_not_at_all_publishes_as_celery_does(
    wire_env, monkeypatch, dispatch_reports, calls
):
    def for_child_4(index, args, kwargs):
        return calls if index == 4 else None

    ours, log, report = _both(wire_env, monkeypatch, dispatch_reports, send_task=for_child_4)
    assert sum(map(len, ours.values())) == N - 1 + calls
    # the second call is Celery's own send_task (its publish wrapper too)
    assert [entry[:2] for entry in log].count(("publish", 4)) == calls
    assert (report.by_engine, report.by_celery) == (N - 1 + min(calls, 1), max(calls - 1, 0))


def test_a_wrapper_that_raises_stops_where_celery_does(wire_env, monkeypatch):
    app, tasks, queues, client = wire_env
    logs = {}
    for impl in (celery_group, turbo_group):

        def fails_at_37(index, args, kwargs):
            if index == 37:
                raise RuntimeError("tracer failed")

        with monkeypatch.context() as patched:
            tracer = Tracer(patched, send_task=fails_at_37)
            with pytest.raises(RuntimeError, match="tracer failed"):
                dispatch(impl, _children, app, tasks, {})
        logs[impl] = tracer.log
        sent = drain(client, queues)
        # Celery sent the children before it; turbogroup nothing
        assert sum(map(len, sent.values())) == (37 if impl is celery_group else 0)
    assert logs[turbo_group] == logs[celery_group]
    assert logs[celery_group][-2:] == [("apply_async", 37), ("send_task", 37)]


@pytest.mark.amqp
def test_wrapped_children_on_rabbitmq_are_celerys_messages(make_app, monkeypatch, dispatch_reports):
    """On RabbitMQ the innermost wrapper calls kombu's publish of each
    message, with Celery's arguments, into the recording producer."""
    app = make_app()
    queue = app.queue_names[0]
    seen = {}
    for impl in (celery_group, turbo_group):
        with monkeypatch.context() as patched:
            tracer = Tracer(patched)
            impl(app.add.s(i, i) for i in range(N)).apply_async()
        seen[impl] = (_canonical_amqp(take_messages(app, queue)), tracer.log)
    assert seen[turbo_group] == seen[celery_group]
    assert len(seen[turbo_group][0]) == N
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("amqp", N, 0)


def _canonical_amqp(messages):
    """The messages as JSON, each uuid replaced by its order of first
    appearance, the delivery tag dropped."""
    seen: dict[str, str] = {}

    def placeholder(match):
        return seen.setdefault(match.group(0), f"<{len(seen)}>")

    out = []
    for message in messages:
        message["properties"].pop("delivery_tag", None)
        out.append(UUID.sub(placeholder, json.dumps(message)))
    return out


def test_children_with_headers_of_their_own_get_celerys_send_task(
    wire_env, monkeypatch, dispatch_reports
):
    own = {"mine": "é"}  # one dict: the children are alike

    def with_own_headers(g, tasks):
        return g(tasks["add"].s(i, i).set(headers=own) for i in range(N))

    ours, log, report = _both(wire_env, monkeypatch, dispatch_reports, build=with_own_headers)
    assert sum(map(len, ours.values())) == N
    assert log[2][2][-3:] == ("mine", "x-apply_async", "x-send_task")
    assert (report.by_engine, report.by_celery) == (0, N)


def test_a_chords_header_inside_the_wrappers_is_celerys(wire_env, monkeypatch, dispatch_reports):
    def chord_of(g, tasks):
        header = g(tasks["add"].s(i, i) for i in range(N))
        return (header | tasks["tsum"].s().set(task_id="body")).set(task_id="header-id")

    ours, log, report = _both(wire_env, monkeypatch, dispatch_reports, build=chord_of)
    assert sum(map(len, ours.values())) == N
    assert len(log) == 3 * N
    assert (report.by_engine, report.by_celery) == (N, 0)

"""kombu's in-memory transport takes the Rust-encoded fast path: the
message dicts it queues are the ones Celery's own group puts there, but
for the generated ids, and the fast path did the work."""

from __future__ import annotations

import base64
import json
import queue
import re
import uuid
from typing import Any
from unittest.mock import patch

import pytest
from celery import Celery, Signature
from celery.canvas import group as celery_group
from kombu.transport.memory import Channel as MemoryChannel

from turbogroup import group
from turbogroup.result import LazyResults

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def app():
    name = f"tg-mem-{uuid.uuid4().hex[:10]}"
    app = Celery(name, set_as_current=False)
    app.conf.update(broker_url="memory://localhost/", task_default_queue=name)

    @app.task(name="tg_mem.add", shared=False)
    def add(x, y=0):
        return x + y

    yield app
    MemoryChannel.queues.pop(name, None)
    app.close()


def drain(name: str) -> list[dict[str, Any]]:
    """Every message dict on the in-memory queue, body decoded."""
    q = MemoryChannel.queues.get(name)
    out = []
    while q is not None:
        try:
            message = q.get_nowait()
        except queue.Empty:
            break
        message = dict(message)
        message["body"] = json.loads(base64.b64decode(message["body"]))
        out.append(message)
    return out


def without_generated_ids(messages: list[dict[str, Any]]) -> Any:
    """Each uuid replaced by its order of first appearance (task, group and
    root ids, correlation ids, delivery tags)."""
    seen: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        return seen.setdefault(match.group(0), f"<id{len(seen)}>")

    return json.loads(UUID.sub(rename, json.dumps(messages)))


@pytest.mark.parametrize(
    "children",
    [
        pytest.param(lambda add: [add.s(i, i) for i in range(300)], id="plain"),
        pytest.param(
            lambda add: (
                [add.s(i).set(priority=3, expires=600) for i in range(50)]
                + [add.si(i, 1) for i in range(50)]
            ),
            id="two-kinds",
        ),
        pytest.param(lambda add: [add.s(i, y={"k": [i, "é"]}) for i in range(40)], id="kwargs"),
    ],
)
def test_memory_transport_queues_what_celery_queues(app, children, dispatch_reports):
    add = app.tasks["tg_mem.add"]
    name = app.conf.task_default_queue
    ours = group(children(add)).apply_async()
    assert type(ours._results) is LazyResults  # made by the fast path only
    (report,) = dispatch_reports()
    assert (report.transport, report.by_celery, report.by_engine) == (
        "memory",
        0,
        len(children(add)),
    )
    fast = drain(name)
    theirs = celery_group(children(add), app=app).apply_async()
    slow = drain(name)
    assert len(fast) == len(slow) == len(ours.results) == len(theirs.results)
    assert [m["headers"]["id"] for m in fast] == [r.id for r in ours.results]
    # expires is "now + 600 s" at each publish: compared as set or not
    for m in fast + slow:
        m["headers"]["expires"] = m["headers"]["expires"] is not None
        m["properties"]["expiration"] = m["properties"].get("expiration") is not None
    assert without_generated_ids(fast) == without_generated_ids(slow)


@pytest.mark.parametrize("target", ["send_task_message", "send_task", "Signature.apply_async"])
def test_a_replaced_publish_function_sees_every_child(app, target):
    """A mock or a wrapper where Celery publishes (a test's patch, a
    tracer's wrapper) must be called for every child, as with Celery: the
    fast path steps aside."""
    add = app.tasks["tg_mem.add"]
    owner = {"send_task_message": app.amqp, "send_task": app}.get(target, Signature)
    with patch.object(owner, target.rsplit(".", 1)[-1], autospec=True) as replaced:
        res = group(add.s(i, i) for i in range(20)).apply_async()
    assert replaced.call_count == 20
    assert type(res._results) is list
    assert not drain(app.conf.task_default_queue)


def test_a_receivers_headers_on_the_memory_transport_are_celerys(app, dispatch_reports):
    """A tracer's receiver adds headers: the children after the first are
    written from their template with them (``publish/signalled.py``)."""
    from celery import signals

    def traces(headers, **_):
        headers["traceparent"] = f"00-{headers['group_index']:032}-{'0' * 16}-01"

    add = app.tasks["tg_mem.add"]
    name = app.conf.task_default_queue
    signals.before_task_publish.connect(traces)
    try:
        group([add.s(i, i) for i in range(30)]).apply_async()
        fast = drain(name)
        celery_group([add.s(i, i) for i in range(30)], app=app).apply_async()
        slow = drain(name)
    finally:
        signals.before_task_publish.disconnect(traces)
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery, report.looped) == (30, 0, 29)
    assert list(fast[-1]["headers"])[-1] == "traceparent"
    assert without_generated_ids(fast) == without_generated_ids(slow)


def test_a_tracers_wrappers_run_around_the_memory_transports_messages(
    app, monkeypatch, dispatch_reports
):
    """Wrappers of Sentry's shape (``publish/wrapped.py``): every message
    by the encoder, inside them, as Celery's group makes it."""
    from tests.integration.test_wrappers_around_the_encoder import Tracer

    add = app.tasks["tg_mem.add"]
    name = app.conf.task_default_queue
    seen = {}
    for impl in (celery_group, group):
        with monkeypatch.context() as patched:
            tracer = Tracer(patched)
            impl([add.s(i, i) for i in range(40)], app=app).apply_async()
        seen[impl] = (without_generated_ids(drain(name)), tracer.log)
    assert seen[group] == seen[celery_group]
    assert len(seen[group][0]) == 40
    (report,) = dispatch_reports()
    assert (report.transport, report.by_engine, report.by_celery) == ("memory", 40, 0)

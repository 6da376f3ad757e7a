"""What a group pushes to Redis when the messages' shape comes from outside
the canvas, turbogroup vs Celery 5.7.0: the broker transport's priority
lists, the app's task protocol, a task's own ``expires``. The fast path
must read them where Celery does, or step aside for Celery.
"""

from __future__ import annotations

import base64
import datetime
import json

import pytest
from celery.canvas import group as celery_group

from tests.integration.celery_wire import FIXED_NOW, drain, normalized
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis


def test_priority_lists_follow_the_transports_sep_and_steps(wire_env, dispatch_reports):
    # kombu names a priority's list queue + sep + step; both come from the
    # broker transport options, and the fast path must use the channel's.
    app, tasks, queues, client = wire_env
    app.conf.broker_transport_options = {"sep": ":", "priority_steps": list(range(10))}

    def build(g):
        return g(tasks["add"].s(i).set(priority=i % 10) for i in range(30))

    def pushed():
        out = {}
        for key in client.scan_iter(match=f"{queues[0]}*"):
            if client.type(key) == b"list":
                out[key] = sorted(
                    json.loads(m)["headers"]["argsrepr"] for m in client.lrange(key, 0, -1)
                )
                client.delete(key)
        return out

    with app.connection_for_write() as conn:
        conn.default_channel  # noqa: B018 - connects with the options above
    build(celery_group).apply_async()
    theirs = pushed()
    build(turbo_group).apply_async()
    ours = pushed()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (30, 0)
    assert f"{queues[0]}:7".encode() in theirs
    assert ours == theirs


def test_protocol_1_apps_get_celerys_protocol_1_messages(wire_env, dispatch_reports):
    app, tasks, queues, client = wire_env
    app.conf.task_protocol = 1

    def build(g):
        return g(tasks["add"].s(i, y=i).set(task_id=f"p1-{i}") for i in range(20))

    drain(client, queues)
    build(celery_group).apply_async(task_id="group-id")
    theirs = drain(client, queues)
    build(turbo_group).apply_async(task_id="group-id")
    ours = drain(client, queues)
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (0, 20)  # Celery writes protocol 1
    first = json.loads(theirs[queues[0]][0])
    assert "task" in json.loads(base64.b64decode(first["body"]))  # protocol 1: all in the body
    assert {k: [normalized(m) for m in v] for k, v in ours.items()} == {
        k: [normalized(m) for m in v] for k, v in theirs.items()
    }


@pytest.mark.parametrize("preset_ids", [True, False], ids=["preset ids", "plain path"])
def test_a_tasks_own_expires_is_each_messages_own_time(wire_env, preset_ids):
    """A task's ``expires`` attribute is turned into a time per message, from
    ``app.now()`` at that message: alike children must not share the first
    one's. The clock ticks at each read, so a shared value shows."""
    app, tasks, queues, client = wire_env

    @app.task(name="tg_groupmsg.expiring", shared=False, expires=60)
    def expiring(x):
        return x

    def canvas(g):
        return g(
            expiring.s(i).set(task_id=f"id-{i}") if preset_ids else expiring.s(i) for i in range(6)
        )

    def ticking():
        ticks = iter(range(10**6))
        return lambda: FIXED_NOW + datetime.timedelta(milliseconds=next(ticks))

    sent = {}
    for name, g in (("celery", celery_group), ("turbogroup", turbo_group)):
        drain(client, queues)
        app.now = ticking()
        canvas(g).apply_async(task_id="group-id")
        (messages,) = drain(client, queues).values()
        sent[name] = [json.loads(m)["headers"]["expires"] for m in messages]
    assert len(set(sent["celery"])) == 6
    assert sent["turbogroup"] == sent["celery"]

"""What a group dispatch of children with preset ids pushes to Redis,
turbogroup vs Celery 5.7.0.

Both dispatch the same canvas with the same preset ids, on the same app,
with the clock frozen (countdown/expires are computed from ``app.now()``);
every message Redis receives must then be byte for byte the same, apart
from kombu's random ``delivery_tag``. This pins the fast path (Rust
encoding, multi-value LPUSH) and its per-child fallbacks together.
"""

from __future__ import annotations

import uuid

import pytest
import redis
from celery.canvas import group as celery_group

from tests.conftest import REDIS_BROKER_DB
from tests.integration.celery_wire import dispatch, drain, normalized
from tests.integration.group_cases import CASES
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("case", list(CASES))
def test_group_pushes_exactly_what_celery_pushes(wire_env, case):
    app, tasks, queues, client = wire_env
    build, options = CASES[case]
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, options)
    theirs = drain(client, queues)
    dispatch(turbo_group, build, app, tasks, options)
    ours = drain(client, queues)
    assert theirs, "Celery pushed nothing: the case is broken"
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        want = [normalized(m) for m in theirs[key]]
        got = [normalized(m) for m in ours[key]]
        assert got == want, key


@pytest.mark.parametrize(("case", "messages"), [("one-child", 1), ("one-chain", 1), ("plain", 5)])
def test_the_encoder_builds_every_message_of_a_small_group(
    wire_env, dispatch_reports, case, messages
):
    # a group of one: its child is its kind's template and is sent whole;
    # of more: the first is an alike child of its own message, with the rest
    app, tasks, queues, client = wire_env
    build, options = CASES[case]
    drain(client, queues)
    dispatch(turbo_group, build, app, tasks, options)
    assert sum(map(len, drain(client, queues).values())) == messages
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (messages, 0)


def test_stamped_group_pushes_what_celery_pushes(wire_env):
    app, tasks, queues, client = wire_env

    def build(g):
        canvas = g(tasks["add"].s(i, i).set(task_id=f"s-{i}") for i in range(3))
        canvas.stamp(mystamp="on")
        return canvas

    drain(client, queues)
    build(celery_group).apply_async(task_id="group-id")
    theirs = drain(client, queues)
    build(turbo_group).apply_async(task_id="group-id")
    ours = drain(client, queues)
    assert {k: [normalized(m) for m in v] for k, v in ours.items()} == {
        k: [normalized(m) for m in v] for k, v in theirs.items()
    }


def test_chord_header_pushes_what_celery_pushes(wire_env):
    app, tasks, queues, client = wire_env

    def build(g):
        header = g(tasks["add"].s(i, i).set(task_id=f"h-{i}") for i in range(3))
        # chord's task_id option becomes the header's group id
        return (header | tasks["tsum"].s().set(task_id="body")).set(task_id="header-id")

    drain(client, queues)
    build(celery_group).apply_async(task_id="chord-id")
    theirs = drain(client, queues)
    build(turbo_group).apply_async(task_id="chord-id")
    ours = drain(client, queues)
    assert {k: [normalized(m) for m in v] for k, v in ours.items()} == {
        k: [normalized(m) for m in v] for k, v in theirs.items()
    }


@pytest.mark.parametrize("batch_size", [1, 2, 1000])
def test_a_repeated_frozen_signature_pushes_what_celery_pushes(
    wire_env, dispatch_reports, monkeypatch, batch_size
):
    # Every child has the first one's id; a step may hold one of them alone,
    # which is not the first child's message (its group index differs).
    app, tasks, queues, client = wire_env
    monkeypatch.setitem(app.conf, "turbogroup_batch_size", batch_size)

    def build(g, t):
        sig = t["add"].s(1, y=2)
        sig.freeze(_id="frozen-id")
        return g([sig] * 5)

    drain(client, queues)
    dispatch(celery_group, build, app, tasks, {})
    theirs = drain(client, queues)
    dispatch(turbo_group, build, app, tasks, {})
    ours = drain(client, queues)
    assert {k: [normalized(m) for m in v] for k, v in ours.items()} == {
        k: [normalized(m) for m in v] for k, v in theirs.items()
    }
    assert sum(map(len, ours.values())) == 5
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (5, 0)


def test_task_ids_that_are_not_strings_are_sent_as_celery_sends_them(redis_url, dispatch_reports):
    # Celery sends a task_id a user set as it is (kombu's JSON writes a UUID
    # as its string); with no result backend it dispatches them (a Redis
    # backend's key for an int id raises, in Celery and so in turbogroup).
    from celery import Celery

    queue = f"tg-groupmsg-ids-{uuid.uuid4().hex[:10]}"
    app = Celery("tg_groupmsg_ids", set_as_current=False)
    app.conf.update(broker_url=f"{redis_url}/{REDIS_BROKER_DB}", task_default_queue=queue)

    @app.task(name="tg_groupmsg_ids.add", shared=False)
    def add(x, y=0):
        return x + y

    own = uuid.UUID("6f9619ff-8b86-d011-b42d-00cf4fc964ff")
    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")

    def sent(g):
        children = [add.s(1, 1).set(task_id=5), add.s(2, 2).set(task_id="id-1")]
        result = g([*children, add.s(3, 3).set(task_id=own)], app=app).apply_async(
            task_id="group-id"
        )
        pushed = [normalized(m) for m in reversed(client.lrange(queue, 0, -1))]
        client.delete(queue)
        return [r.id for r in result.results], pushed

    try:
        theirs, ours = sent(celery_group), sent(turbo_group)
    finally:
        client.delete(queue)
        client.close()
        app.close()
    assert ours == theirs
    assert ours[0] == [5, "id-1", own] and ours[0][2] is own
    (report,) = dispatch_reports()
    assert report.by_engine + report.by_celery == 3 and report.by_celery >= 2

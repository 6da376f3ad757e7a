"""What a whole group dispatch pushes to Redis, turbogroup vs Celery 5.7.0.

Both dispatch the same canvas with the same preset ids, on the same app,
with the clock frozen (countdown/expires are computed from ``app.now()``);
every message Redis receives must then be byte for byte the same, apart
from kombu's random ``delivery_tag``. This pins the fast path (Rust
encoding, multi-value LPUSH) and its per-child fallbacks together.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid

import pytest
import redis
from celery import chain
from celery.canvas import Signature
from celery.canvas import group as celery_group

from tests.conftest import REDIS_BROKER_DB
from tests.integration.celery_wire import (
    FIXED_NOW,
    Level,
    dispatch,
    drain,
    normalized,
    normalized_plain,
)
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis

CASES = {
    "plain": (lambda g, t: g(t["add"].s(i, i).set(task_id=f"id-{i}") for i in range(5)), {}),
    "task-options": (
        lambda g, t: g(
            t["add"]
            .s(1, y=2)
            .set(
                task_id="a",
                countdown=10,
                expires=60,
                priority=5,
                time_limit=30,
                soft_time_limit=20,
                headers={"h": 1},
                ignore_result=True,
                foo="bar",
            ),
            t["add"].s(3).set(task_id="b", expires=FIXED_NOW + datetime.timedelta(hours=1)),
            t["add"].s(4).set(task_id="c", eta=FIXED_NOW + datetime.timedelta(minutes=5)),
        ),
        {},
    ),
    "group-options": (
        lambda g, t: g(t["add"].s(i).set(task_id=f"id-{i}") for i in range(3)),
        {"args": (100,), "priority": 7, "task_id": "the-group", "shadow": "x"},
    ),
    "immutable-and-partial": (
        lambda g, t: g(t["add"].si(1, 1).set(task_id="imm"), t["add"].s(5).set(task_id="mut")),
        {"args": (10,)},
    ),
    "links": (
        lambda g, t: g(
            t["add"].s(1, 1).set(task_id="l1", link=t["tsum"].s(), link_error=t["tsum"].si([])),
            t["add"].s(2, 2).set(task_id="l2"),
        ),
        {},
    ),
    "routes-and-queue-option": (
        lambda g, t: g(
            t["routed"].s(1).set(task_id="r1"),
            t["add"].s(1, 1).set(task_id="r2", queue=None),
        ),
        {},
    ),
    "tagged-and-fallback-values": (
        lambda g, t: g(
            t["add"]
            .s(decimal.Decimal("1.5"), y=uuid.UUID(int=7))
            .set(task_id="t1", stamps_unused=None),
            t["add"].s(FIXED_NOW, y=b"\xff\x00").set(task_id="t2"),
            t["add"].s(Level.HIGH).set(task_id="t3-intenum-falls-back"),
        ),
        {},
    ),
    # Children alike but for ids and arguments share their resolved
    # options (a memo); the ones that differ must not.
    "alike-and-different-children": (
        lambda g, t: g(
            *[t["add"].s(y=i).set(task_id=f"m-{i}") for i in range(4)],
            t["add"].s(9).set(task_id="m-prio", priority=3),
            t["routed"].si(5).set(task_id="m-routed"),
            t["add"].s(10).set(task_id="m-limit", time_limit=5),
            t["add"].si(11, 12).set(task_id="m-immutable"),
            t["add"].s(12).set(task_id="m-count", countdown=3),
            t["add"].s(13).set(task_id="m-again"),
            t["add"].s(14).set(task_id="m-prio-again", priority=3),
        ),
        {"args": (100,), "headers": {"h": [1, 2]}},
    ),
    # Children Celery's publish builds (an IntEnum the encoder leaves to
    # kombu, a task with its own apply_async) keep their place in the queue.
    "celery-built-children-keep-their-place": (
        lambda g, t: g(
            t["add"].s(1, 1).set(task_id="o1"),
            t["add"].s(Level.HIGH).set(task_id="o2"),
            t["add"].s(3, 3).set(task_id="o3"),
            t["own"].s(4).set(task_id="o4"),
            t["add"].s(5, 5).set(task_id="o5"),
            t["add"].s(6, 6).set(task_id="o6"),
        ),
        {},
    ),
    # A chain member's first task is published with the rest of the chain
    # in its message, in the chain's place in the group.
    "chain-members": (
        lambda g, t: g(
            t["add"].s(1, 1).set(task_id="c1"),
            chain(t["add"].s(2, 2).set(task_id="c2"), t["add"].s(1).set(task_id="c3")),
            t["add"].s(3, 3).set(task_id="c4"),
            chain(
                t["add"].s(5, 5).set(task_id="c5"),
                t["add"].s(1).set(task_id="c6"),
                t["add"].s(2).set(task_id="c7", priority=3),
            ),
            chain(t["add"].s(8, 8).set(task_id="c8")),
        ),
        {},
    ),
    "one-child": (lambda g, t: g([t["add"].s(1, y=2).set(task_id="only")]), {}),
    "one-chain": (
        lambda g, t: g(
            [chain(t["add"].s(1, 1).set(task_id="first"), t["add"].s(2).set(task_id="then"))]
        ),
        {},
    ),
    # Chains of one shape: the first's message is the template of the
    # others', each with the rest of its own chain filled in.
    "alike-chain-members": (
        lambda g, t: g(
            *[
                chain(
                    t["add"].s(i, i).set(task_id=f"a{i}"),
                    t["add"].s(1).set(task_id=f"b{i}"),
                    t["add"].s(i).set(task_id=f"c{i}"),
                )
                for i in range(5)
            ],
            t["add"].s(9, 9).set(task_id="a9"),
            chain(t["add"].s(7, 7).set(task_id="a7"), t["add"].s(1).set(task_id="b7")),
            chain(t["add"].s(8, 8).set(task_id="a8"), t["add"].s(1).set(task_id="b8")),
        ),
        {},
    ),
    "chain-members-with-group-args-and-errbacks": (
        lambda g, t: g(
            chain(t["add"].s(2).set(task_id="e1"), t["add"].s(1).set(task_id="e2")).on_error(
                t["tsum"].s().set(task_id="err")
            ),
            chain(t["add"].si(1, 1).set(task_id="e3"), t["add"].si(2, 2).set(task_id="e4")),
            chain(
                t["add"].s(3).set(task_id="e5"),
                chain(t["add"].s(1).set(task_id="e6"), t["add"].s(1).set(task_id="e7")),
            ),
            t["add"].s(4).set(task_id="e8"),
        ),
        {"args": (100,), "priority": 2},
    ),
}
CASES["option values equal only in Python"] = (
    lambda g, t: g(
        t["add"].s(i).set(task_id=f"id-{i}", time_limit=(60, 60.0)[i % 2], soft_time_limit=0.0)
        if i % 3
        else t["add"].s(i).set(task_id=f"id-{i}", time_limit=60, soft_time_limit=-0.0)
        for i in range(9)
    ),
    {},
)


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


# Children without preset ids take turbogroup's plain-signature path (one
# template per kind of child, results kept as ids). Ids are then random on
# both sides, so each message's own id is normalized away too.
PLAIN_CASES = {
    "alike": (lambda g, t: g(t["add"].s(i, i) for i in range(2500)), {}),
    # group._apply_tasks takes the group's group_index for itself
    "a group index of the group's own": (
        lambda g, t: g(t["add"].s(i, i) for i in range(4)),
        {"group_index": 7},
    ),
    # tasks sent by name, not registered here (Celery's send_task)
    "by name": (
        lambda g, t: g(t["add"].app.signature("tg_groupmsg.remote", args=(i,)) for i in range(3)),
        {},
    ),
    # Signature.clone makes a dict of them
    "kwargs as pairs": (
        lambda g, t: g(
            Signature(t["add"], args=(i,), kwargs=[("y", i)], app=t["add"].app) for i in range(3)
        ),
        {},
    ),
    "kinds": (
        lambda g, t: g(
            t["add"].s(y=i) if i % 5 else t["add"].s().set(priority=3 + i % 2) for i in range(40)
        ),
        {"args": (100,), "kwargs": {"y": 1}, "headers": {"h": [1, 2]}},
    ),
    "immutable-routed-clocked": (
        lambda g, t: g(
            *[t["add"].si(i, 1) for i in range(3)],
            *[t["routed"].si(i) for i in range(3)],
            *[t["add"].s(i).set(countdown=3, expires=60) for i in range(3)],
            *[t["add"].s(i).set(link=t["tsum"].s(), time_limit=5) for i in range(3)],
        ),
        {"args": (7,)},
    ),
    # equal in Python, written differently: each value its own kind
    "option values equal only in Python": (
        lambda g, t: g(
            t["add"].s(i).set(time_limit=(60, 60.0)[i % 2], priority=(1, True, 1.0)[i % 3])
            for i in range(12)
        ),
        {},
    ),
    "unencodable-alike-child": (
        lambda g, t: g(
            t["add"].s(1, 2),
            t["add"].s(Level.HIGH),
            t["add"].s(decimal.Decimal("2.5"), y=uuid.UUID(int=3)),
            t["add"].s(4, 5),
        ),
        {},
    ),
}


@pytest.mark.parametrize("case", list(PLAIN_CASES))
def test_plain_children_push_what_celery_pushes(wire_env, case):
    app, tasks, queues, client = wire_env
    build, options = PLAIN_CASES[case]
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, options)
    theirs = drain(client, queues)
    result = build(turbo_group, tasks).apply_async(**{"task_id": "group-id", **options})
    ours = drain(client, queues)
    assert type(result._results).__name__ == "LazyResults", "the plain path was not taken"
    assert theirs, "Celery pushed nothing: the case is broken"
    assert sorted(ours) == sorted(theirs)
    sent_ids = []
    for key in theirs:
        want = [normalized_plain(m) for m in theirs[key]]
        got = [normalized_plain(m) for m in ours[key]]
        assert got == want, key
        sent_ids += [json.loads(m)["headers"]["id"] for m in ours[key]]
    # the result's children are the messages' ids, in group order
    ids = [r.id for r in result.results]
    assert sorted(ids) == sorted(sent_ids)
    indexes = {
        json.loads(m)["headers"]["id"]: json.loads(m)["headers"]["group_index"]
        for v in ours.values()
        for m in v
    }
    assert [indexes[i] for i in ids] == list(range(len(ids)))


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
        app.close()
    assert ours == theirs
    assert ours[0] == [5, "id-1", own] and ours[0][2] is own
    (report,) = dispatch_reports()
    assert report.by_engine + report.by_celery == 3 and report.by_celery >= 2

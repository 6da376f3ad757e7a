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
import enum
import json
import uuid

import pytest
import redis
from celery import Celery, chain
from celery.canvas import _chain
from celery.canvas import group as celery_group

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB, kombu_list_key
from turbogroup import group as turbo_group
from turbogroup.publish.redis import RedisFastDispatch

pytestmark = pytest.mark.redis

FIXED_NOW = datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
STEPS = (0, 3, 6, 9)


class Level(enum.IntEnum):
    HIGH = 1


@pytest.fixture
def env(redis_url):
    queue = f"tg-groupmsg-{uuid.uuid4().hex[:10]}"
    other = f"{queue}-other"
    app = Celery("tg_groupmsg", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        # chords need a backend; its keys share the queue's unique prefix
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": f"{queue}:"},
        task_default_queue=queue,
        task_routes={"tg_groupmsg.routed": {"queue": other}},
    )
    app.now = lambda: FIXED_NOW

    @app.task(name="tg_groupmsg.add", shared=False)
    def add(x, y=0):
        return x + y

    @app.task(name="tg_groupmsg.routed", shared=False)
    def routed(x):
        return x

    @app.task(name="tg_groupmsg.tsum", shared=False)
    def tsum(values):
        return sum(values)

    class OwnApplyAsync(app.Task):
        def apply_async(self, *args, **kwargs):  # not Celery's: Celery publishes it
            return super().apply_async(*args, **kwargs)

    @app.task(name="tg_groupmsg.own", shared=False, base=OwnApplyAsync)
    def own(x):
        return x

    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")
    tasks = {"add": add, "routed": routed, "tsum": tsum, "own": own}
    yield app, tasks, [queue, other], client
    keys = [k for q in (queue, other) for k in client.scan_iter(match=f"*{q}*")]
    if keys:
        client.delete(*keys)
    client.close()
    backend_client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    keys = list(backend_client.scan_iter(match=f"{queue}:*"))
    if keys:
        backend_client.delete(*keys)
    backend_client.close()
    app.close()


def drain(client, queues):
    """Every message pushed, oldest first, per destination list."""
    out = {}
    for q in queues:
        for p in STEPS:
            key = kombu_list_key(q, p)
            raw = client.lrange(key, 0, -1)
            client.delete(key)
            if raw:
                out[key] = list(reversed(raw))
    return out


def first_difference(a, b):
    i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return a[max(i - 60, 0) : i + 60], b[max(i - 60, 0) : i + 60]


def normalized(raw):
    envelope = json.loads(raw)
    tag = envelope["properties"]["delivery_tag"]
    return raw.replace(tag.encode(), b"<tag>")


def dispatch(impl, build, app, tasks, options):
    canvas = build(impl, tasks)
    canvas.apply_async(**{"task_id": "group-id", **options})


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


@pytest.mark.parametrize("case", list(CASES))
def test_group_pushes_exactly_what_celery_pushes(env, case):
    app, tasks, queues, client = env
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


def test_stamped_group_pushes_what_celery_pushes(env):
    app, tasks, queues, client = env

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


def test_chord_header_pushes_what_celery_pushes(env):
    app, tasks, queues, client = env

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


@pytest.mark.parametrize("kind", ["list", "generator"])
def test_chord_headers_without_ids_push_what_celery_pushes(env, dispatch_reports, kind):
    """A chord header's children take the plain path, a generator header's
    too: chord.run freezes that one lazily and never reads its results, so
    its children are not frozen when it is dispatched and their chord is
    the group's option. The messages, the chord size and the one child
    left to Celery's publish (an IntEnum argument) are Celery's."""
    app, tasks, queues, client = env
    add, tsum = tasks["add"], tasks["tsum"]
    size_key = app.backend.get_key_for_group("header-id", ".s")

    def build(g):
        children = (add.s(i, Level.HIGH if i == 3 else i) for i in range(40))
        header = g(children if kind == "generator" else list(children))
        return (header | tsum.s().set(task_id="body")).set(task_id="header-id")

    def sent():
        size = app.backend.client.get(size_key)
        app.backend.client.delete(size_key)
        return size, {k: [normalized_plain(m) for m in v] for k, v in drain(client, queues).items()}

    drain(client, queues)
    build(celery_group).apply_async(task_id="chord-id")
    theirs = sent()
    result = build(turbo_group).apply_async(task_id="chord-id")
    ours = sent()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (39, 1)
    assert type(result.parent._results).__name__ == "LazyResults", "the plain path was not taken"
    assert theirs[0] == b"40"
    assert ours == theirs


# Children without preset ids take turbogroup's plain-signature path (one
# template per kind of child, results kept as ids). Ids are then random on
# both sides, so each message's own id is normalized away too.
PLAIN_CASES = {
    "alike": (lambda g, t: g(t["add"].s(i, i) for i in range(2500)), {}),
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


def normalized_plain(raw):
    envelope = json.loads(raw)
    own_id = envelope["headers"]["id"]
    return normalized(raw).replace(own_id.encode(), b"<id>")


@pytest.mark.parametrize("case", list(PLAIN_CASES))
def test_plain_children_push_what_celery_pushes(env, case):
    app, tasks, queues, client = env
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


NESTED_CASES = {
    # each child's group index is its place in its own group, as Celery's
    # _prepared enumerates each level
    "groups of groups": (
        lambda g, t: g(g(t["add"].s(i, j) for j in range(3)) for i in range(4)),
        12,
        0,
    ),
    "mixed, one child left to Celery": (
        lambda g, t: g(
            t["add"].s(1),
            g([t["add"].s(2), t["add"].s(Level.HIGH)]),
            g(g(t["add"].s(3)), t["add"].s(4)),
            t["add"].s(5),
        ),
        5,
        1,
    ),
}


@pytest.mark.parametrize("case", list(NESTED_CASES))
def test_nested_groups_push_what_celery_pushes(env, dispatch_reports, case):
    app, tasks, queues, client = env
    build, by_engine, by_celery = NESTED_CASES[case]
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, {})
    theirs = drain(client, queues)
    result = build(turbo_group, tasks).apply_async(task_id="group-id")
    ours = drain(client, queues)
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (by_engine, by_celery)
    assert type(result._results).__name__ == "LazyResults", "the plain path was not taken"
    (key,) = theirs
    assert [normalized_plain(m) for m in ours[key]] == [normalized_plain(m) for m in theirs[key]]
    # one flat result per task sent, in order, as Celery's group returns
    assert [r.id for r in result.results] == [json.loads(m)["headers"]["id"] for m in ours[key]]


def test_priority_lists_follow_the_transports_sep_and_steps(env, dispatch_reports):
    # kombu names a priority's list queue + sep + step; both come from the
    # broker transport options, and the fast path must use the channel's.
    app, tasks, queues, client = env
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


def test_protocol_1_apps_get_celerys_protocol_1_messages(env, dispatch_reports):
    app, tasks, queues, client = env
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


def test_chain_members_are_built_by_the_encoder_in_one_batch(env, dispatch_reports, monkeypatch):
    app, tasks, queues, client = env
    add = tasks["add"]
    drain(client, queues)
    prepared = []
    prepare_steps = _chain.prepare_steps

    def counting(self, *args, **kwargs):
        prepared.append(kwargs.get("clone", True))
        return prepare_steps(self, *args, **kwargs)

    monkeypatch.setattr(_chain, "prepare_steps", counting)
    sealed_kinds = []
    sender = RedisFastDispatch.sender

    def noting_kinds(self, sealed):
        sealed_kinds.extend(type(s.message).__name__ for s in sealed)
        return sender(self, sealed)

    monkeypatch.setattr(RedisFastDispatch, "sender", noting_kinds)
    result = turbo_group(chain(add.s(i, i), add.s(1), add.s(2)) for i in range(50)).apply_async()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (50, 0)
    # the first chain's message is the others' template
    assert sealed_kinds == ["dict"] + ["AlikeChild"] * 49
    # each chain prepared once, by its freeze: chain.run's second pass
    # would only copy the frozen steps
    assert prepared == [False] * 50
    (pushed,) = drain(client, queues).values()
    messages = [json.loads(raw) for raw in pushed]
    bodies = [json.loads(base64.b64decode(m["body"])) for m in messages]
    assert [m["headers"]["argsrepr"] for m in messages] == [f"({i}, {i})" for i in range(50)]
    # each message carries the rest of its chain, the last step first, and
    # the group's result is each chain's last task
    rest = [[step["task"] for step in body[2]["chain"]] for body in bodies]
    assert rest == [[add.name, add.name]] * 50
    last_ids = [body[2]["chain"][0]["options"]["task_id"] for body in bodies]
    assert [r.id for r in result.results] == last_ids
    assert [body[2]["chain"][0]["options"]["group_index"] for body in bodies] == list(range(50))

"""What chord headers, nested groups and chain members push to Redis,
turbogroup vs Celery 5.7.0, as ``test_group_messages_match_celery_*``
compare plain groups (``celery_wire``), and which of turbogroup's paths
built them."""

from __future__ import annotations

import base64
import json

import pytest
from celery import chain
from celery.canvas import Signature, _chain
from celery.canvas import group as celery_group

from tests.integration.celery_wire import Level, canonical, dispatch, drain, normalized_plain
from turbogroup import group as turbo_group
from turbogroup.publish.redis import RedisFastDispatch

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("kind", ["list", "generator"])
def test_chord_headers_without_ids_push_what_celery_pushes(wire_env, dispatch_reports, kind):
    """A chord header's children take the plain path, a generator header's
    too: chord.run freezes that one lazily and never reads its results, so
    its children are not frozen when it is dispatched and their chord is
    the group's option. The messages, the chord size and the one child
    left to Celery's publish (an IntEnum argument) are Celery's."""
    app, tasks, queues, client = wire_env
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
def test_nested_groups_push_what_celery_pushes(wire_env, dispatch_reports, case):
    app, tasks, queues, client = wire_env
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


def test_chain_members_are_built_by_the_encoder_in_one_batch(
    wire_env, dispatch_reports, monkeypatch
):
    app, tasks, queues, client = wire_env
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

    def noting_kinds(self, sealed, ids):
        sealed_kinds.extend(
            (type(s.message).__name__, s.message.template["task_id"], s.task_id) for s in sealed
        )
        return sender(self, sealed, ids)

    monkeypatch.setattr(RedisFastDispatch, "sender", noting_kinds)
    result = turbo_group(chain(add.s(i, i), add.s(1), add.s(2)) for i in range(50)).apply_async()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (50, 0)
    # the first chain's message is the others' template, each built from it
    # (the first too: one run, one encoder call)
    first_id = sealed_kinds[0][2]
    assert [kind for kind, _, _ in sealed_kinds] == ["AlikeChild"] * 50
    assert {template_id for _, template_id, _ in sealed_kinds} == {first_id}
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


SHARED_REST = [Signature("tg_groupmsg.add", args=(5,))]  # only sent: no app needed
CHAIN_CASES = {
    # the bench's shape: 2-step chains, nothing set on them
    "2-step": (lambda g, t: g(chain(t["add"].s(i, i), t["add"].s(1)) for i in range(30)), 30, 0),
    # shapes side by side, among plain children and in a nested group; one
    # chain's first argument the encoder leaves to Celery (with its ids)
    "shapes, plain and nested": (
        lambda g, t: g(
            t["add"].s(0),
            *[chain(t["add"].s(i, i), t["add"].s(i), t["add"].si(2, 2)) for i in range(4)],
            g([chain(t["add"].s(7, 7), t["add"].s(1)), t["add"].s(8)]),
            chain(t["add"].s(3, 3), t["add"].s(1)),
            chain(t["add"].s(Level.HIGH, 1), t["add"].s(1)),
            chain(t["add"].s(4, y=4), t["add"].s(1)),
        ),
        9,
        1,
    ),
}


CHAIN_CASES.update(
    {
        # a chain option set on plain children is each one's own
        "chain options of plain children": (
            lambda g, t: g(
                t["add"].s(1).set(chain=[t["tsum"].s()]),
                *[t["add"].s(i).set(chain=SHARED_REST) for i in range(2, 5)],
            ),
            4,
            0,
        ),
        # a step not registered here (sent by name), and keyword arguments
        # given as pairs (Signature.clone makes a dict of them)
        "a step by name, kwargs as pairs": (
            lambda g, t: g(
                chain(
                    Signature(t["add"], args=(i,), kwargs=[("y", i)], app=t["add"].app),
                    t["add"].app.signature("tg_groupmsg.remote"),
                )
                for i in range(4)
            ),
            4,
            0,
        ),
    }
)


@pytest.mark.parametrize("case", list(CHAIN_CASES))
def test_chain_members_of_one_shape_push_what_celery_pushes(wire_env, dispatch_reports, case):
    """Chains with nothing set on them are built from the first chain of
    their shape (``plain_chains``): new ids and each chain's arguments in
    its first message and its chain field, its result the last step's with
    each step's result as the next one's parent, as Celery's."""
    app, tasks, queues, client = wire_env
    build, by_engine, by_celery = CHAIN_CASES[case]
    drain(client, queues)
    theirs_result = build(celery_group, tasks).apply_async(task_id="group-id")
    (theirs,) = drain(client, queues).values()
    ours_result = build(turbo_group, tasks).apply_async(task_id="group-id")
    (ours,) = drain(client, queues).values()
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (by_engine, by_celery)
    assert type(ours_result._results).__name__ == "LazyResults", "the plain path was not taken"
    assert canonical(ours, ours_result.results) == canonical(theirs, theirs_result.results)

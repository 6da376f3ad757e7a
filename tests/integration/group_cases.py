"""The groups whose Redis messages are compared with Celery's
(``test_group_messages_match_celery_*``, ``test_publish_signal_arguments``):
each case is a canvas builder ``(group_class, tasks) -> group`` of the
``wire_env`` tasks and the options it is applied with."""

from __future__ import annotations

import datetime
import decimal
import uuid

from celery import chain
from celery.canvas import Signature

from tests.integration.celery_wire import FIXED_NOW, Level

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

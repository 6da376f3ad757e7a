"""Options whose handling on the way to the broker is easy to get wrong,
turbogroup vs Celery 5.7.0 on Redis: a ``route_name`` given to the group's
``apply_async`` (``Signature.apply_async`` takes it as a parameter and
passes it on nowhere), a chain whose options hold ``immutable``, and a
falsy ``eta``, which Celery writes as it is."""

from __future__ import annotations

import pytest
from celery import chain
from celery.canvas import group as celery_group

from tests.integration.celery_wire import canonical, drain
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis


def _immutable_chain(t, i):
    c = chain(t["add"].s(i), t["add"].s(1))
    c.options["immutable"] = True  # the group's clone of it is immutable
    return c


CASES = {
    "route_name of the group call, plain children": (
        lambda t, i: t["add"].s(i, i),
        {"route_name": "tg_groupmsg.routed"},
        (12, 0),
    ),
    "route_name of the group call, chains": (
        lambda t, i: chain(t["add"].s(i, i), t["add"].s(1)),
        {"route_name": "tg_groupmsg.routed"},
        (12, 0),
    ),
    "a signature's own route_name": (
        lambda t, i: t["add"].s(i, i).set(route_name="tg_groupmsg.routed"),
        {},
        (12, 0),
    ),
    "an immutable chain option and partial args": (_immutable_chain, {"args": (7,)}, (12, 0)),
    "a falsy eta": (lambda t, i: t["add"].s(i, i).set(eta=0), {}, (0, 12)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_group_pushes_what_celery_pushes(wire_env, dispatch_reports, case):
    app, tasks, queues, client = wire_env
    build, call, counts = CASES[case]

    def dispatch(g):
        result = g(build(tasks, i) for i in range(12)).apply_async(task_id="group-id", **call)
        return result, drain(client, queues)

    drain(client, queues)
    theirs_result, theirs = dispatch(celery_group)
    ours_result, ours = dispatch(turbo_group)
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == counts
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert canonical(ours[key], ours_result.results) == canonical(
            theirs[key], theirs_result.results
        )

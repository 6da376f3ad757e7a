"""Children whose options read the clock (``countdown``, ``eta``,
``expires``, a task's own ``expires``) pushed to Redis, turbogroup vs
Celery 5.7.0, with a clock that ticks at every read.

Celery computes each message's eta, expires and ``expiration`` property
from a fresh ``app.now()``; the fast path builds such children from their
kind's template with their own clock fields, read from the clock as many
times and in the same order, so the messages are byte for byte Celery's
(delivery tags aside) only if no child shares another's time.
"""

from __future__ import annotations

import datetime
import json

import celery.app.base
import pytest
from celery.canvas import group as celery_group

from tests.integration.celery_wire import FIXED_NOW, dispatch, drain, normalized
from turbogroup import group as turbo_group
from turbogroup.publish import resolve

pytestmark = pytest.mark.redis

HOUR = datetime.timedelta(hours=1)
SECOND = datetime.timedelta(seconds=1)


def _ids(make):
    return lambda g, t: g(make(t, i).set(task_id=f"id-{i}") for i in range(8))


CASES = {
    "the group's countdown": (_ids(lambda t, i: t["add"].s(i)), {"countdown": 10}),
    "the group's expires in seconds": (_ids(lambda t, i: t["add"].s(i)), {"expires": 60}),
    "the children's countdown and expires": (
        _ids(lambda t, i: t["add"].s(i).set(countdown=3, expires=60.5)),
        {},
    ),
    "an expiry as a datetime": (_ids(lambda t, i: t["add"].s(i)), {"expires": FIXED_NOW + HOUR}),
    "an eta and an expiry as a string": (
        _ids(lambda t, i: t["add"].s(i)),
        {"eta": FIXED_NOW + HOUR, "expires": (FIXED_NOW + 2 * HOUR).isoformat()},
    ),
    "a countdown of 0 and an expiration option": (
        _ids(lambda t, i: t["add"].s(i).set(countdown=0, expiration=30)),
        {},
    ),
    "clocked and plain kinds alternating, nested": (
        lambda g, t: g(
            *[
                t["add"].s(i).set(task_id=f"id-{i}", **({"countdown": 5} if i % 2 else {}))
                for i in range(6)
            ],
            g(t["add"].s(i).set(task_id=f"n-{i}", expires=9) for i in range(3)),
        ),
        {"args": (1,)},
    ),
}


def _ticking():
    """A clock that moves on a millisecond at each read."""
    ticks = iter(range(10**6))
    return lambda: FIXED_NOW + datetime.timedelta(milliseconds=next(ticks))


def _pushed(impl, build, wire_env, options, clock=_ticking):
    app, tasks, queues, client = wire_env
    drain(client, queues)
    app.now = clock()
    dispatch(impl, build, app, tasks, options)
    return {
        key: [normalized(m) for m in messages] for key, messages in drain(client, queues).items()
    }


@pytest.fixture
def resolved(monkeypatch):
    """How many children the fast path resolved the whole way (as Celery
    does each), rather than from their kind's template."""
    calls = []
    original = resolve.MessageResolver.resolve

    def counting(self, *args, **kwargs):
        calls.append(args[0].name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(resolve.MessageResolver, "resolve", counting)
    return calls


@pytest.mark.parametrize("batch_size", [1000, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_clocked_children_push_what_celery_pushes(
    wire_env, dispatch_reports, resolved, monkeypatch, case, batch_size
):
    app = wire_env[0]
    monkeypatch.setitem(app.conf, "turbogroup_batch_size", batch_size)
    build, options = CASES[case]
    theirs = _pushed(celery_group, build, wire_env, options)
    ours = _pushed(turbo_group, build, wire_env, options)
    (report,) = dispatch_reports()
    messages = sum(map(len, theirs.values()))
    assert (report.by_engine, report.by_celery) == (messages, 0)
    # one child of each kind resolved the whole way, the others from it
    assert len(resolved) <= 3, resolved
    assert ours == theirs


def test_a_tasks_own_expires_with_a_countdown(wire_env, dispatch_reports, resolved):
    app, tasks, queues, client = wire_env

    @app.task(name="tg_groupmsg.expiring", shared=False, expires=60)
    def expiring(x):
        return x

    def build(g, t):
        return g(expiring.s(i).set(task_id=f"id-{i}") for i in range(6))

    theirs = _pushed(celery_group, build, wire_env, {"countdown": 2})
    ours = _pushed(turbo_group, build, wire_env, {"countdown": 2})
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery, len(resolved)) == (6, 0, 1)
    assert ours == theirs


def _passing_an_hour_after(reads):
    """A clock that jumps an hour ahead after ``reads`` reads."""
    counted = iter(range(10**6))
    return lambda: FIXED_NOW + (HOUR if next(counted) >= reads else datetime.timedelta())


def test_children_whose_expiry_passes_take_celerys_path(wire_env, dispatch_reports, monkeypatch):
    """The clock passes the group's expiry during the dispatch (after the
    third child's read): Celery warns and sends each later child with an
    expiration of 0, and so do those children here, by Celery's publish,
    in their places. (Such a child reads the clock here before Celery's
    publish reads it again: the clock jumps once, so the extra read shows
    in no message.)"""
    build = _ids(lambda t, i: t["add"].s(i))
    options = {"expires": FIXED_NOW + datetime.timedelta(minutes=1)}
    jumping = lambda: _passing_an_hour_after(3)  # noqa: E731
    theirs = _pushed(celery_group, build, wire_env, options, jumping)
    # Celery's warning, counted where it is logged (a logging setup made
    # by another test may keep it from the log capture)
    warned = []
    monkeypatch.setattr(celery.app.base.logger, "warning", lambda *a, **k: warned.append(a))
    ours = _pushed(turbo_group, build, wire_env, options, jumping)
    (report,) = dispatch_reports()
    (messages,) = theirs.values()
    expired = [m for m in messages if b'"expiration": "0"' in m]
    assert len(expired) == 5
    assert (report.by_engine, report.by_celery) == (len(messages) - len(expired), len(expired))
    assert sum("expiration date in the past" in str(a[0]) for a in warned) == len(expired)
    assert ours == theirs


@pytest.mark.parametrize("zone", [None, "America/New_York"])
def test_the_apps_own_clock_gives_celerys_times(wire_env, dispatch_reports, monkeypatch, zone):
    """With Celery's own ``app.now`` (read quicker here, ``app_now``): each
    eta is a time of the dispatch plus the countdown, in the app's zone,
    written as Celery writes it."""
    app, tasks, queues, client = wire_env
    del app.now  # the fixture's frozen clock
    monkeypatch.setitem(app.conf, "timezone", zone)
    app.__dict__.pop("timezone", None)  # Celery's cached_property, read again
    build = _ids(lambda t, i: t["add"].s(i))
    sent = {}
    for name, g in (("celery", celery_group), ("turbogroup", turbo_group)):
        drain(client, queues)
        before = app.now()
        dispatch(g, build, app, tasks, {"countdown": 30})
        after = app.now()
        (messages,) = drain(client, queues).values()
        etas = [json.loads(m)["headers"]["eta"] for m in messages]
        times = [datetime.datetime.fromisoformat(eta) for eta in etas]
        assert all(before + 30 * SECOND <= t <= after + 30 * SECOND for t in times)
        assert {t.utcoffset() for t in times} == {before.utcoffset()}
        sent[name] = [
            normalized(m).replace(eta.encode(), b"<eta>") for m, eta in zip(messages, etas)
        ]
    (report,) = dispatch_reports()
    assert (report.by_engine, report.by_celery) == (8, 0)
    assert sent["turbogroup"] == sent["celery"]

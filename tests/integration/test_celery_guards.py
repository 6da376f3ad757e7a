"""Outside the tested Celery/kombu versions, or with ``turbogroup_fast_path``
off, Celery's own path dispatches and collects; the fast path is back when
the app allows untested versions. The path taken is told by what only the
fast path makes: results kept as ids (``LazyResults``) and no per-child
SUBSCRIBE on the result backend.
"""

from __future__ import annotations

import logging

import pytest

from turbogroup import celery_guards, group
from turbogroup.result import LazyResults

pytestmark = pytest.mark.redis
N = 50


@pytest.fixture
def env(redis_add_env):
    return redis_add_env


@pytest.fixture
def untested_celery(monkeypatch):
    """As if the installed Celery were a release the fast path was not
    tested with."""
    monkeypatch.setitem(celery_guards.TESTED_VERSIONS, "celery", ("5.7.99",))
    monkeypatch.setattr(celery_guards, "_warned", set())
    celery_guards.untested_versions.cache_clear()
    yield
    celery_guards.untested_versions.cache_clear()


def dispatch(add, broker, queue):
    before = broker.llen(queue)
    res = group(add.s(i, i) for i in range(N)).apply_async()
    assert broker.llen(queue) == before + N
    return res


def test_the_tested_versions_take_the_fast_path(env):
    app, add, queue, broker = env
    assert celery_guards.untested_versions() is None
    res = dispatch(add, broker, queue)
    assert type(res._results) is LazyResults
    assert not app.backend.result_consumer.subscribed_to


def test_untested_versions_take_celerys_path_and_warn_once(env, untested_celery, caplog):
    app, add, queue, broker = env
    with caplog.at_level(logging.WARNING, logger="turbogroup"):
        first = dispatch(add, broker, queue)
        second = dispatch(add, broker, queue)
    assert type(first._results) is list and type(second._results) is list
    # Celery's send_task subscribes each child's result channel
    subscribed = {
        (c.decode() if isinstance(c, bytes) else c).rsplit("celery-task-meta-", 1)[-1]
        for c in app.backend.result_consumer.subscribed_to
    }
    assert {r.id for r in first.results} <= subscribed
    warnings = [r.getMessage() for r in caplog.records if r.name == "turbogroup"]
    assert len(warnings) == 1, warnings
    assert "celery 5.7.0 installed" in warnings[0] and "5.7.99" in warnings[0]
    assert "turbogroup_allow_untested_versions" in warnings[0]
    assert first._collector() is None  # collected by Celery's code too


def test_untested_versions_allowed_by_the_app_take_the_fast_path(env, untested_celery):
    app, add, queue, broker = env
    app.conf.turbogroup_allow_untested_versions = True
    res = dispatch(add, broker, queue)
    assert type(res._results) is LazyResults


def test_fast_path_off_in_the_config_takes_celerys_path(env):
    app, add, queue, broker = env
    app.conf.turbogroup_fast_path = False
    res = dispatch(add, broker, queue)
    assert type(res._results) is list
    assert res._collector() is None
    assert app.backend.result_consumer.subscribed_to

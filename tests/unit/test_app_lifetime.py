"""A Celery app is freed once its user drops it, as with Celery's ``group``.

Processes that create apps as they go (test suites, one app per tenant or
per configuration) rely on this: every app holds its configuration, its
tasks and, once used, its result backend's connection pool with an open
socket.
"""

from __future__ import annotations

import gc
import weakref

from celery import Celery
from celery.canvas import group as celery_group

from turbogroup import group as turbo_group


def _app_used_by(group_cls: type) -> weakref.ref:
    app = Celery("turbogroup-lifetime", set_as_current=False)
    app.conf.update(broker_url="memory://", result_backend="cache+memory://")

    @app.task(shared=False)
    def add(x, y):
        return x + y

    group_cls([add.s(1, 1), add.s(2, 2)]).apply_async()
    app.close()
    return weakref.ref(app)


def test_celery_group_lets_the_app_go():
    ref = _app_used_by(celery_group)
    gc.collect()
    assert ref() is None


def test_turbogroup_group_lets_the_app_go():
    # Regression: a module-level WeakKeyDictionary from app to its bound
    # GroupResult class kept every app alive (the class refers to the app).
    ref = _app_used_by(turbo_group)
    gc.collect()
    assert ref() is None

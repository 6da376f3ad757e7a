"""A wrapper around Celery's publishing functions (a tracer's, made with
``functools.wraps``) is told from Celery's own code by its code object,
not by identity with what was there at import: installed before or after
turbogroup, it is seen, and the fast paths leave such children to it."""

from __future__ import annotations

import functools

import celery.app.task
import pytest
from celery import Celery
from celery.app.task import Task
from kombu import Producer

from turbogroup import celery_guards
from turbogroup.publish.alike import celery_publishing_task


def wrap(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


@pytest.fixture
def app():
    app = Celery("tg_wrapped", set_as_current=False)

    @app.task(name="tg_wrapped.add", shared=False)
    def add(x, y):
        return x + y

    yield app
    app.close()


def test_celerys_own_functions_are_recognised(app):
    assert celery_guards.defined_by(Task.apply_async, celery.app.task, "apply_async")
    assert celery_guards.publishing_is_celerys_own(app)
    assert celery_publishing_task(app, app.tasks["tg_wrapped.add"].s(1, 1)) is not None


@pytest.mark.parametrize(
    "owner, name",
    [(Task, "apply_async"), (Celery, "send_task"), (Producer, "publish")],
)
def test_a_wrapper_is_seen_and_its_children_left_to_celery(app, monkeypatch, owner, name):
    monkeypatch.setattr(celery_guards, "_warned", set())
    monkeypatch.setattr(owner, name, wrap(getattr(owner, name)))
    assert not celery_guards.defined_by(getattr(owner, name), celery.app.task, name)
    if owner is Task:
        assert celery_publishing_task(app, app.tasks["tg_wrapped.add"].s(1, 1)) is None
    assert not celery_guards.publishing_is_celerys_own(app)
    assert any(name in w for w in celery_guards._warned)


def test_a_task_class_overriding_apply_async_is_left_to_celery(app):
    class Own(Task):
        def apply_async(self, *args, **kwargs):
            return super().apply_async(*args, **kwargs)

    @app.task(name="tg_wrapped.own", base=Own, shared=False)
    def own():
        return None

    task = app.tasks["tg_wrapped.own"]
    assert celery_publishing_task(app, task.s()) is None

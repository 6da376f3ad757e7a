"""A wrapper around Celery's publishing functions (a tracer's, made with
``functools.wraps``) is told from Celery's own code by its code object,
not by identity with what was there at import: installed before or after
turbogroup, it is seen. One of the usual shape (a closure over Celery's
function) is run around the Redis fast path's messages
(``publish/wrapped.py``); anything else leaves the children to Celery."""

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


WRAPPABLE = [(Task, "apply_async"), (Celery, "send_task"), (Producer, "publish")]


@pytest.mark.parametrize("owner, name", WRAPPABLE)
def test_a_wrapper_is_seen_and_run_around_the_fast_path(app, monkeypatch, owner, name):
    monkeypatch.setattr(celery_guards, "_warned", set())
    original = getattr(owner, name)
    monkeypatch.setattr(owner, name, wrap(original))
    assert not celery_guards.defined_by(getattr(owner, name), celery.app.task, name)
    # the dispatch decides, for every task of Task's: not Celery's own...
    assert celery_publishing_task(app, app.tasks["tg_wrapped.add"].s(1, 1)) is not None
    assert not celery_guards.publishing_is_celerys_own(app)
    assert any(name in w for w in celery_guards._warned)
    # ...but wrapped as a fast path can run it
    wrappers = celery_guards.publishing_wrappers(app)
    assert wrappers is not None
    (wrapper,) = [w for w in wrappers if w is not None]
    assert wrapper.func is getattr(owner, name) and wrapper.original is original


class CallableWrapper:  # wrapt's shape: not a function with a closure
    def __init__(self, func):
        self.func = func

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)


def twice_held(func):
    first = second = func

    def wrapper(*args, **kwargs):
        return (first if args else second)(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("shape", [CallableWrapper, twice_held, lambda f: wrap(wrap(f))])
def test_a_wrapper_of_another_shape_leaves_the_dispatch_to_celery(app, monkeypatch, shape):
    monkeypatch.setattr(celery_guards, "_warned", set())
    monkeypatch.setattr(Task, "apply_async", shape(Task.apply_async))
    assert celery_guards.publishing_wrappers(app) is None
    assert not celery_guards.publishing_is_celerys_own(app)


def test_no_wrapper_is_no_wrappers(app):
    assert celery_guards.publishing_wrappers(app) is None
    assert celery_guards.publishing_is_celerys_own(app)


def test_around_is_the_wrapper_calling_something_else():
    seen = []

    def original(x):
        return ("original", x)

    def make(func, tag):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            seen.append(tag)
            return func(*args, **kwargs)

        return wrapper

    wrapper = make(original, "traced")
    cells = [c.cell_contents for c in wrapper.__closure__]
    held = celery_guards.Wrapper(wrapper, cells.index(original), original)
    around = held.around(lambda x: ("inner", x))
    assert around(1) == ("inner", 1) and wrapper(2) == ("original", 2)
    assert seen == ["traced", "traced"]  # its own code and state, both times


def test_a_task_class_overriding_apply_async_is_left_to_celery(app):
    class Own(Task):
        def apply_async(self, *args, **kwargs):
            return super().apply_async(*args, **kwargs)

    @app.task(name="tg_wrapped.own", base=Own, shared=False)
    def own():
        return None

    task = app.tasks["tg_wrapped.own"]
    assert celery_publishing_task(app, task.s()) is None

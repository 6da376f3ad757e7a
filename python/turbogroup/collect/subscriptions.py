"""No per-task SUBSCRIBE while a group is dispatched on the Redis backend.

Celery's ``send_task`` calls ``backend.on_task_call`` for every task, and
on Redis that SUBSCRIBEs to the task's result channel; the group's ready
barrier (``res.then``) registers every child again. At 100k tasks that is
100k channels on one pub/sub connection, whose output buffer Redis then
overflows and drops, and ~100 µs per task.

A group's results are collected by ``turbogroup.collect.redis`` without
pub/sub, and ``AsyncResult.get()`` on any single child subscribes on demand
before it reads the stored result, so skipping the subscription at dispatch
loses nothing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from turbogroup._compat import RedisBackend
from turbogroup.celery_guards import fast_path_enabled
from turbogroup.collect.settle import mark_quick, redis_removal_is_celerys, untracked_by


def _no_subscription(producer: Any, task_id: str) -> None:
    del producer, task_id


@contextmanager
def no_subscriptions_during_dispatch(app: Any) -> Iterator[bool]:
    """Yields True when the app's Redis backend was told not to subscribe.

    ``app.backend`` is per thread in Celery, so shadowing the method on the
    instance affects only this thread's dispatch. A nested dispatch (a chord
    header inside a group) finds it already shadowed and leaves it be.
    """
    backend = app.backend
    if not fast_path_enabled(app):
        yield False  # Celery's own path: its subscriptions too
        return
    if not isinstance(backend, RedisBackend) or "on_task_call" in backend.__dict__:
        yield isinstance(backend, RedisBackend)
        return
    backend.on_task_call = _no_subscription
    try:
        # A chain member's results are made twice (its freeze, then
        # Celery's chain.run) and the second ones are dropped at once:
        # each drop runs Celery's removal bookkeeping.
        with quick_fulfilment(backend):
            yield True
    finally:
        del backend.on_task_call


def header_results_unregistered(apply_chord: Callable[..., Any]) -> Callable[..., Any]:
    """Celery's Redis ``apply_chord``, registering none of the header's
    results (``install()`` puts it on the Redis backend class).

    That method makes a ``GroupResult`` of the header only to see whether
    a child is itself a group. Its vine barrier calls ``then`` on every
    child, which registers the child as pending and SUBSCRIBEs to its
    channel: 10,000 round trips for a 10,000-task header before any task
    is sent, and 10,000 channels left subscribed (at 100k, more than the
    connection's output buffer holds). The barrier is dropped when the
    method returns; the results the chord hands back are the dispatch's,
    collected without pub/sub. Where the fast path is off, or the
    backend's ``add_pending_result`` is someone else's, Celery's runs.
    """

    @functools.wraps(apply_chord)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # imported here: turbogroup.lazy reads results through this module
        from turbogroup.lazy import LazyResults

        header_result_args = args[0] if args else kwargs["header_result_args"]
        if isinstance(header_result_args[1], LazyResults):
            # A header frozen as ids (turbogroup.chord): plain signatures'
            # results, none of them a group's, so Celery's method would
            # find nothing to save.
            return None
        if not fast_path_enabled(self.app) or "add_pending_result" in self.__dict__:
            return apply_chord(self, *args, **kwargs)
        self.add_pending_result = _register_nothing
        try:
            return apply_chord(self, *args, **kwargs)
        finally:
            del self.add_pending_result

    wrapper.__turbogroup_wraps__ = apply_chord  # type: ignore[attr-defined]
    return wrapper


def header_results_unread(backend: Any) -> bool:
    """Whether ``backend.apply_chord`` is Celery's Redis one wrapped by
    ``header_results_unregistered`` and would skip Celery's: then a
    chord's frozen header results are read by nothing."""
    apply_chord = getattr(type(backend), "apply_chord", None)
    return (
        getattr(apply_chord, "__turbogroup_wraps__", None) is not None
        and fast_path_enabled(backend.app)
        and "add_pending_result" not in backend.__dict__
        and "apply_chord" not in backend.__dict__
    )


def _register_nothing(result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
    del weak, start_drainer
    return result


@contextmanager
def quick_fulfilment(backend: RedisBackend) -> Iterator[None]:
    """While results are being cached by the collector, skip Celery's
    bookkeeping for results nobody registered or subscribed.

    Caching a result fires its ``on_ready`` promise, whose first step is
    ``backend.remove_pending_result``: it drops the result from the pending
    registry, then queues an UNSUBSCRIBE that ``cancel_for`` discards when
    the channel was never subscribed. For a result in no registry, whose
    channel is not subscribed, that is a no-op costing ~15 µs; this returns
    early in exactly that case (``settle.untracked_by``) and defers to
    Celery otherwise.

    Results carry the backend of the thread that dispatched them, so
    several threads may collect through one backend at once: the shortcut
    is installed by the first of them and removed by the last (counted
    under a lock; a stress run caught two threads both removing it).
    """
    if not redis_removal_is_celerys(backend):
        yield  # someone else's removal: it runs for every result
        return
    key = id(backend)
    with _quick_lock:
        users = _quick_users.get(key)
        # Installed neither by us nor by anyone else (someone else's shadow
        # is left be): install it.
        if users is None and "remove_pending_result" not in backend.__dict__:
            backend.remove_pending_result = _quick(backend)
            users = _quick_users[key] = [0]
        if users is not None:
            users[0] += 1
    try:
        yield
    finally:
        if users is not None:
            with _quick_lock:
                users[0] -= 1
                if users[0] == 0:
                    del _quick_users[key]
                    del backend.remove_pending_result


_quick_lock = threading.Lock()
# id(backend) -> [collections using the shortcut installed on it]
_quick_users: dict[int, list[int]] = {}


def _quick(backend: RedisBackend) -> Any:
    original = backend.remove_pending_result
    untracked = untracked_by(backend)

    @mark_quick
    def remove_pending_result(result: Any) -> Any:
        if untracked(result.id):
            return result
        return original(result)

    return remove_pending_result

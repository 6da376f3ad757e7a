"""``app.GroupResult`` as turbogroup's while ``install()`` is in effect.

A GroupResult that is restored (``GroupResult.restore(gid)``, through the
backend's ``result_from_tuple``) or built from ids
(``app.GroupResult(gid, [app.AsyncResult(i) for i in ids])``, as a web
request following a job up builds it) is made by ``app.GroupResult``:
Celery's class bound to the app, which reads one result per round trip.
So do Celery's own chord and chain code, and the Redis backend's chord
counter. ``install()`` makes that attribute turbogroup's class, bound the
same way (``bound_group_result``): the same class contract, read in
bulk where the backend allows.

Celery's ``Celery.GroupResult`` is a cached property: an app that has not
read it yet gets ours on first use, and an app that already holds Celery's
bound class has it swapped. An app (or an app class) with a ``GroupResult``
of its own keeps it. ``uninstall()`` gives every app Celery's back.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from celery import Celery, _state
from celery.result import GroupResult as CeleryGroupResult
from kombu.utils.objects import cached_property

from turbogroup.result import GroupResult

_ATTRIBUTE = "GroupResult"
_lock = threading.Lock()
_celery_property: Any = None
# app -> the Celery class it held before ours was swapped in
_swapped: weakref.WeakKeyDictionary[Celery, type] = weakref.WeakKeyDictionary()


def _ours_property() -> cached_property:
    prop = cached_property(bound_group_result)
    prop.__set_name__(Celery, _ATTRIBUTE)
    return prop


def start() -> None:
    """From ``install()``."""
    global _celery_property
    with _lock:
        if _celery_property is not None:
            return
        _celery_property = Celery.__dict__[_ATTRIBUTE]
        setattr(Celery, _ATTRIBUTE, _ours_property())
        for app in list(_state._get_active_apps()):
            held = app.__dict__.get(_ATTRIBUTE)
            if held is not None and is_celery_default(held, app):
                _swapped[app] = held
                app.__dict__[_ATTRIBUTE] = bound_group_result(app)


def stop() -> None:
    """From ``uninstall()``."""
    global _celery_property
    with _lock:
        if _celery_property is None:
            return
        setattr(Celery, _ATTRIBUTE, _celery_property)
        _celery_property = None
        for app in list(_state._get_active_apps()):
            held = app.__dict__.get(_ATTRIBUTE)
            if held is None or held is not app.__dict__.get(BOUND_ATTRIBUTE):
                continue
            original = _swapped.pop(app, None)
            if original is not None:
                app.__dict__[_ATTRIBUTE] = original
            else:  # made while installed: Celery's is made on next use
                del app.__dict__[_ATTRIBUTE]
        _swapped.clear()


def group_result_cls(app: Celery) -> type[CeleryGroupResult]:
    """The result class a group of ``app`` returns.

    ``app.GroupResult`` is normally Celery's class bound to the app; then we
    return ours, bound the same way (:func:`bound_group_result`). An app
    that set its own ``GroupResult`` keeps it.
    """
    current = app.GroupResult
    if not is_celery_default(current, app):
        return current
    return bound_group_result(app)


def bound_group_result(app: Celery) -> type[CeleryGroupResult]:
    """Our ``GroupResult`` bound to ``app`` as Celery binds its own (and
    pickled the same way, through ``app.GroupResult``). The class is kept
    on the app, as Celery keeps its own bound classes: a mapping from apps
    to classes bound to them would keep every app alive."""
    cls = app.__dict__.get(BOUND_ATTRIBUTE)
    if cls is None:
        cls = app.subclass_with_self(GroupResult, reverse="GroupResult")
        app.__dict__[BOUND_ATTRIBUTE] = cls
    return cls


BOUND_ATTRIBUTE = "_turbogroup_GroupResult"


def is_celery_default(cls: Any, app: Any) -> bool:
    return (
        isinstance(cls, type)
        and cls.__bases__ == (CeleryGroupResult,)
        and cls.__dict__.get("app") is app
    )

"""``app.GroupResult`` as turbogroup's while ``install()`` is in effect.

A GroupResult that is restored (``GroupResult.restore(gid)``, through the
backend's ``result_from_tuple``) or built from ids
(``app.GroupResult(gid, [app.AsyncResult(i) for i in ids])``, as a web
request following a job up builds it) is made by ``app.GroupResult``:
Celery's class bound to the app, which reads one result per round trip.
So do Celery's own chord and chain code, and the Redis backend's chord
counter. ``install()`` makes that attribute turbogroup's class, bound the
same way (``result.bound_group_result``): the same class contract, read in
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
from kombu.utils.objects import cached_property

from turbogroup.result import BOUND_ATTRIBUTE, _is_celery_default, bound_group_result

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
            if held is not None and _is_celery_default(held, app):
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

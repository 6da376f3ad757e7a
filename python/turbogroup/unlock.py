"""``celery.chord_unlock`` collecting through turbogroup's ``GroupResult``.

On a result backend without native chords (the database backend among
them) a chord completes through Celery's ``chord_unlock`` task, which the
worker retries every ``result_chord_retry_interval`` until the header's
``GroupResult.ready()`` is true, then joins it and calls the body. The task
makes that ``GroupResult`` with a default argument bound when the app is
finalized (``GroupResult=app.GroupResult``), so each retry reads the
header's results one at a time: 10,000 reads for a 10,000-task header's
last poll, and 10,000 more for the join.

While ``install()`` is in effect, that default is the app's turbogroup
``GroupResult`` (``app_results.group_result_cls``): same class contract, same
``ready`` and ``join`` semantics, read in bulk where the backend allows. An
app whose ``GroupResult`` is its own keeps it. Apps finalized before
``install()`` are changed at once, later ones as they are finalized.
"""

from __future__ import annotations

import threading
import weakref
from types import FunctionType
from typing import Any

from celery import _state

from turbogroup.app_results import BOUND_ATTRIBUTE, group_result_cls, is_celery_default

UNLOCK_TASK = "celery.chord_unlock"
_PARAMETER = "GroupResult"
_RECEIVER_UID = "turbogroup.unlock"

_lock = threading.Lock()
# unlock function -> its defaults as Celery bound them
_originals: weakref.WeakKeyDictionary[FunctionType, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def _unlock_function(app: Any) -> FunctionType | None:
    task = app._tasks.get(UNLOCK_TASK)
    run = type(task).__dict__.get("run") if task is not None else None
    if not isinstance(run, FunctionType) or not run.__defaults__:
        return None
    return run


def _default_index(run: FunctionType) -> int | None:
    code = run.__code__
    names = code.co_varnames[: code.co_argcount]
    defaults = run.__defaults__ or ()
    if _PARAMETER not in names:
        return None
    index = names.index(_PARAMETER) - (len(names) - len(defaults))
    return index if index >= 0 else None


def _unlock_default(app: Any) -> tuple[FunctionType, int] | None:
    """``app``'s chord_unlock function and the index of its ``GroupResult``
    default, if it has them."""
    run = _unlock_function(app)
    index = _default_index(run) if run is not None else None
    return None if run is None or index is None else (run, index)


def _set_default(run: FunctionType, index: int, value: Any) -> None:
    defaults = list(run.__defaults__ or ())
    defaults[index] = value
    run.__defaults__ = tuple(defaults)


def batch_unlock(app: Any) -> bool:
    """Make ``app``'s chord_unlock build turbogroup's ``GroupResult``;
    False where it is not Celery's default to replace."""
    with _lock:
        found = _unlock_default(app)
        if found is None or found[0] in _originals:
            return False
        run, index = found
        defaults = run.__defaults__ or ()
        if not is_celery_default(defaults[index], app):
            return False
        _originals[run] = defaults
        _set_default(run, index, group_result_cls(app))
        return True


def _after_finalize(sender: Any = None, **kwargs: Any) -> None:
    del kwargs
    batch_unlock(sender)


def _on_app_finalize(app: Any) -> None:
    # Celery creates chord_unlock in a finalize callback of its own, maybe
    # after this one: act once every callback has run.
    app.on_after_finalize.connect(_after_finalize, weak=False, dispatch_uid=_RECEIVER_UID)


def start() -> None:
    """From ``install()``."""
    _state.connect_on_app_finalize(_on_app_finalize)
    for app in list(_state._get_active_apps()):
        if app.finalized:
            batch_unlock(app)


def stop() -> None:
    """From ``uninstall()``, after ``app_results.stop()``: every
    chord_unlock gets Celery's defaults back."""
    _state._on_app_finalizers.discard(_on_app_finalize)
    for app in list(_state._get_active_apps()):
        app.on_after_finalize.disconnect(_after_finalize, dispatch_uid=_RECEIVER_UID)
    with _lock:
        for run, defaults in list(_originals.items()):
            run.__defaults__ = defaults
        _originals.clear()
        # An app finalized while installed bound ours as its default
        # (``app_results``): it gets the class Celery binds now.
        for app in list(_state._get_active_apps()):
            found = _unlock_default(app)
            if found is not None:
                run, index = found
                if (run.__defaults__ or ())[index] is app.__dict__.get(BOUND_ATTRIBUTE):
                    _set_default(run, index, app.GroupResult)

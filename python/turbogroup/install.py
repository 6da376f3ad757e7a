"""``install()`` / ``uninstall()``: make Celery itself use ``turbogroup.group``
and ``turbogroup.chord``.

Celery looks ``group`` and ``chord`` up in several modules (imported by
name at module load) and in ``Signature.TYPES`` (used when a signature is
rebuilt from a dict or cloned). Rebinding all of them makes ``celery.group``,
``celery.chord``, ``chain`` upgrades, ``Task.replace`` and result restoring
use ours. Both are subclasses of Celery's classes, so Celery's own
``isinstance`` checks keep holding.

``app.GroupResult``, which makes restored results and the ones Celery
builds for chords and chains, is our ``GroupResult`` (``app_results.py``);
so is the one Celery's ``chord_unlock`` task builds, which completes chords
on backends without native chord support (``unlock.py``).

One backend method is wrapped as well, because a chord reaches it even
when the user's ``chord`` was imported before ``install()`` (a name bound
to Celery's class): the Redis backend's ``apply_chord``, which would
SUBSCRIBE once per header task (``collect/subscriptions.py``).
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from celery.canvas import Signature

from turbogroup import app_results, unlock
from turbogroup._compat import RedisBackend
from turbogroup.chord import chord
from turbogroup.collect.subscriptions import header_results_unregistered
from turbogroup.group import group
from turbogroup.restore import result_from_tuple

# Every module that holds its own reference to Celery's group or chord,
# and the class that replaces it; and the backends' restore of a saved
# group (``restore.py``).
TARGETS: tuple[tuple[str, str, Any], ...] = (
    ("celery.canvas", "group", group),
    ("celery", "group", group),
    ("celery.app.task", "group", group),
    ("celery.app.trace", "group", group),
    ("celery.backends.base", "group", group),
    ("celery.canvas", "chord", chord),
    ("celery", "chord", chord),
    ("celery.backends.base", "chord", chord),
    ("celery.backends.base", "result_from_tuple", result_from_tuple),
)
TYPES: tuple[tuple[str, type], ...] = (("group", group), ("chord", chord))
# (class, method, wrapper factory): methods wrapped in place.
METHODS: tuple[tuple[type, str, Any], ...] = (
    (RedisBackend, "apply_chord", header_results_unregistered),
)

_lock = threading.Lock()
_saved: dict[tuple[str, str], Any] = {}
_saved_types: dict[str, Any] = {}
_saved_methods: dict[tuple[type, str], Any] = {}


def install() -> None:
    """Rebind ``group`` and ``chord`` everywhere Celery looks them up.
    Idempotent."""
    with _lock:
        if _saved:
            return
        # Every module is imported before anything is rebound: one first
        # imported after would bind our class as its original.
        modules = {name: importlib.import_module(name) for name, _, _ in TARGETS}
        for module_name, attr, _ in TARGETS:
            _saved[module_name, attr] = getattr(modules[module_name], attr)
        for module_name, attr, replacement in TARGETS:
            setattr(modules[module_name], attr, replacement)
        for name, replacement in TYPES:
            _saved_types[name] = Signature.TYPES[name]
            Signature.TYPES[name] = replacement
        for cls, method, wrap in METHODS:
            original = cls.__dict__.get(method)
            if original is not None:  # absent from a stand-in (no redis-py)
                _saved_methods[cls, method] = original
                setattr(cls, method, wrap(original))
        app_results.start()
        unlock.start()


def uninstall() -> None:
    """Restore Celery's own classes everywhere ``install`` rebound them."""
    with _lock:
        if not _saved:
            return
        for (module_name, attr), original in _saved.items():
            setattr(importlib.import_module(module_name), attr, original)
        Signature.TYPES.update(_saved_types)
        for (cls, method), original in _saved_methods.items():
            setattr(cls, method, original)
        app_results.stop()
        unlock.stop()
        _saved.clear()
        _saved_types.clear()
        _saved_methods.clear()


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return bool(_saved)

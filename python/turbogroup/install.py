"""``install()`` / ``uninstall()``: make Celery itself use ``turbogroup.group``.

Celery looks ``group`` up in several modules (imported by name at module
load) and in ``Signature.TYPES`` (used when a group is rebuilt from a dict or
cloned). Rebinding all of them makes ``celery.group``, ``chord`` headers,
``chain`` upgrades, ``Task.replace`` and result restoring use ours.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from celery.canvas import Signature

from turbogroup.group import group

# Every module that holds its own reference to celery.canvas.group.
TARGETS: tuple[tuple[str, str], ...] = (
    ("celery.canvas", "group"),
    ("celery", "group"),
    ("celery.app.task", "group"),
    ("celery.app.trace", "group"),
    ("celery.backends.base", "group"),
)

_lock = threading.Lock()
_saved: dict[tuple[str, str], Any] = {}
_saved_type: list[Any] = []


def install() -> None:
    """Rebind ``group`` everywhere Celery looks it up. Idempotent."""
    with _lock:
        if _saved:
            return
        for module_name, attr in TARGETS:
            module = importlib.import_module(module_name)
            _saved[module_name, attr] = getattr(module, attr)
            setattr(module, attr, group)
        _saved_type.append(Signature.TYPES["group"])
        Signature.TYPES["group"] = group


def uninstall() -> None:
    """Restore Celery's own ``group`` everywhere ``install`` rebound it."""
    with _lock:
        if not _saved:
            return
        for (module_name, attr), original in _saved.items():
            setattr(importlib.import_module(module_name), attr, original)
        Signature.TYPES["group"] = _saved_type.pop()
        _saved.clear()


def installed() -> bool:
    """Whether ``install()`` is in effect."""
    return bool(_saved)

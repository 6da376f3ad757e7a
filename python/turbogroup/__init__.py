"""turbogroup: a Rust-accelerated drop-in replacement for Celery's ``group``.

``from turbogroup import group`` gives Celery 5.7.0's ``group`` semantics;
``turbogroup.install()`` makes Celery itself use it everywhere.
"""

from __future__ import annotations

from turbogroup._core import __version__
from turbogroup.barrier import barrier
from turbogroup.chord import chord
from turbogroup.group import group
from turbogroup.install import install, installed, uninstall
from turbogroup.result import GroupResult

__all__ = [
    "GroupResult",
    "__version__",
    "barrier",
    "chord",
    "group",
    "install",
    "installed",
    "uninstall",
]

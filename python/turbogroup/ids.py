"""Task and group ids, generated in Rust in batches.

Ids are handed out from a small per-thread buffer filled by one call into
Rust (one read of OS randomness), instead of one ``uuid.uuid4()`` per task.
The buffer is dropped in a forked child so that no two processes (Celery's
prefork pool forks after import) ever hand out the same id.
"""

from __future__ import annotations

import os
import threading

from turbogroup import _core

_BATCH = 256
_local = threading.local()


def uuid() -> str:
    """A new uuid4 string, the same form as ``kombu.utils.uuid.uuid()``."""
    try:
        return _local.ids.pop()
    except (AttributeError, IndexError):
        _local.ids = ids = _core.uuid4_batch(_BATCH)
        return ids.pop()


def _forget_buffer_after_fork() -> None:
    global _local
    _local = threading.local()


# Platforms without fork (Windows) have no register_at_fork, and no forked
# child that could inherit the buffer either.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_buffer_after_fork)

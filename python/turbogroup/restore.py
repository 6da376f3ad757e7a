"""A restored group's results kept as task ids until first touched.

``GroupResult.restore(gid)`` (and ``backend.restore_group``) rebuild the
saved tuple with ``result_from_tuple``: one ``AsyncResult`` per child, each
with its ``on_ready`` promise and weak references. Measured on Redis, that
took ~20 µs a child for a 20k group (most of it the cyclic collector
walking the new objects), and dropping the group later ran Celery's
``remove_pending_result`` per child (~10 µs each): several times what
collecting the same results costs. A web request that restores a job's
group to ask ``completed_count()`` paid that on every poll.

On Celery's Redis result backend, a group whose children are all plain
results (``[[id, None], None]``, as ``as_tuple`` writes a task's result)
is rebuilt here around :class:`turbogroup.lazy.LazyResults`, as a
dispatch's results are: the ids only, collected from the ids, each child's
``AsyncResult`` made as ``result_from_tuple`` would make it (the app's
``AsyncResult``, the app's backend, no parent) when the results are first
touched, and attached to the group's ready barrier then. Any other tuple,
app or backend goes through Celery's ``result_from_tuple`` unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery._state import app_or_default
from celery.result import AsyncResult
from celery.result import result_from_tuple as celery_result_from_tuple

from turbogroup._compat import RedisBackend
from turbogroup.barrier import barrier
from turbogroup.celery_guards import fast_path_enabled
from turbogroup.collect.redis import reads_like_celery
from turbogroup.lazy import LazyResults
from turbogroup.result import BatchedCollection


def result_from_tuple(r: Any, app: Any = None) -> Any:
    """Celery's ``result_from_tuple``, with a flat group of plain results on
    the Redis backend kept as ids."""
    if isinstance(r, (list, tuple)) and len(r) == 2:
        ids = _plain_children(r[1])
        if ids:
            app = app_or_default(app)
            restored = _lazy_group(r[0], ids, app)
            if restored is not None:
                return restored
    return celery_result_from_tuple(r, app)


def _plain_children(nodes: Any) -> list[str] | None:
    """The children's ids when every child is a task's result with no
    parent (``[[id, None], None]``, or ``[id, None]``), ids being strings;
    else None."""
    if not isinstance(nodes, list):
        return None
    ids = []
    for child in nodes:
        if not isinstance(child, (list, tuple)) or len(child) != 2 or child[1] is not None:
            return None
        res = child[0]
        if isinstance(res, (list, tuple)):
            if len(res) != 2 or res[1] is not None:
                return None
            res = res[0]
        if type(res) is not str:
            return None
        ids.append(res)
    return ids


def _lazy_group(res: Any, ids: list[str], app: Any) -> Any:
    """``app.GroupResult(id, [app.AsyncResult(i) ...], parent=parent)`` with
    the results kept as ``ids``; None where that would not be the same."""
    cls = app.GroupResult
    backend = app.backend
    if not (
        isinstance(cls, type)
        and issubclass(cls, BatchedCollection)
        # made later with the backend given (see LazyResults): the
        # constructor must be Celery's, which takes it
        and getattr(app.AsyncResult, "__init__", None) is AsyncResult.__init__
        and isinstance(backend, RedisBackend)
        and reads_like_celery(type(backend))
        and fast_path_enabled(app)
    ):
        return None
    if isinstance(res, (list, tuple)):
        if len(res) != 2:
            return None
        group_id, parent = res
    else:
        group_id, parent = res, None
    if parent:
        parent = result_from_tuple(parent, app)
    p = barrier()
    lazy = LazyResults.counted_by(p, unsubscribed=True)
    lazy.column_for(partial(app.AsyncResult, backend=backend)).extend(ids)
    p.size += len(lazy)
    restored = cls(group_id, lazy, parent=parent, ready_barrier=p)
    p.finalize()
    return restored

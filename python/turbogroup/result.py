"""``GroupResult`` whose ready barrier counts in Rust."""

from __future__ import annotations

import weakref
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from celery.result import GroupResult as CeleryGroupResult

from turbogroup.barrier import barrier


class GroupResult(CeleryGroupResult):
    """A ``celery.result.GroupResult`` (every public behaviour unchanged)
    whose ready barrier is :class:`turbogroup.barrier.barrier`."""

    def __init__(
        self,
        id: str | None = None,  # noqa: A002 - Celery's parameter name
        results: list[Any] | None = None,
        parent: Any = None,
        ready_barrier: Any = None,
        **kwargs: Any,
    ) -> None:
        if ready_barrier is None:
            ready_barrier = barrier(results)
        super().__init__(id, results, parent=parent, ready_barrier=ready_barrier, **kwargs)

    def add(self, result: AsyncResult) -> None:
        # Same rules as celery.result.ResultSet.add; only the replacement
        # barrier made after the first one fired is ours, not vine's.
        if result not in self.results:
            self.results.append(result)
            if self._on_full:
                if self._on_full.p.ready:
                    self._set_ready_barrier(barrier())
                    self._on_full.add(result)
                    self._on_full.finalize()
                else:
                    self._on_full.add(result)


_app_classes: weakref.WeakKeyDictionary[Celery, type[GroupResult]] = weakref.WeakKeyDictionary()


def group_result_cls(app: Celery) -> type[CeleryGroupResult]:
    """The result class a group of ``app`` returns.

    ``app.GroupResult`` is normally Celery's class bound to the app; then we
    return ours, bound the same way (and pickled the same way, through
    ``app.GroupResult``). An app that set its own ``GroupResult`` keeps it.
    """
    current = app.GroupResult
    if not _is_celery_default(current, app):
        return current
    cls = _app_classes.get(app)
    if cls is None:
        cls = _app_classes[app] = app.subclass_with_self(GroupResult, reverse="GroupResult")
    return cls


def _is_celery_default(cls: Any, app: Celery) -> bool:
    return (
        isinstance(cls, type)
        and cls.__bases__ == (CeleryGroupResult,)
        and cls.__dict__.get("app") is app
    )

"""``group.freeze`` and its helpers: Celery 5.7.0's, with the unroll and
the ids in Rust (``turbogroup._unroll``), as a mixin of ``turbogroup.group``.
"""

from __future__ import annotations

import itertools
from collections.abc import MutableSequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from celery.canvas import Signature, _chain
from celery.utils.functional import _regen, regen

from turbogroup._unroll import freeze_leaf, freeze_unroll
from turbogroup.app_results import group_result_cls
from turbogroup.collect.subscriptions import header_results_unread
from turbogroup.ids import uuid

# Set while freeze() runs: its results are the user's, always made.
_freezing: ContextVar[bool] = ContextVar("turbogroup_freezing", default=False)


class LazilyFrozen(_regen):
    """A generator group's children after ``freeze``: each is frozen only
    when its result is first read, so one may look unfrozen when
    dispatched (a chord header's are). The plain path takes them only once
    every one is frozen."""


class GroupFreezing:
    """The freezing methods of ``turbogroup.group`` (placed before Celery's
    ``group`` in its bases)."""

    if TYPE_CHECKING:  # what Celery's group provides
        options: dict[str, Any]
        tasks: Any
        app: Any
        _app: Any
        _IMMUTABLE_OPTIONS: Any

        def _unroll_tasks(self, tasks: Any) -> Any: ...

    def _freeze_gid(self, options: dict[str, Any]) -> tuple[dict[str, Any], str, Any]:
        options = {
            **self.options,
            **{
                k: v
                for k, v in options.items()
                if k not in self._IMMUTABLE_OPTIONS or k not in self.options
            },
        }
        # Celery: options.pop('task_id', uuid()) -- an explicit task_id of
        # None stays None.
        group_id = options.pop("task_id") if "task_id" in options else uuid()
        options["group_id"] = group_id
        return options, group_id, options.get("root_id")

    def _freeze_group_tasks(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> tuple[str, Any]:
        # Outside freeze(), Celery calls this in chord.run only, to hand the
        # header's results to the backend's apply_chord; when that one reads
        # none of them, they are kept as ids (turbogroup._unroll).
        unread = (
            chord is not None and not _freezing.get() and header_results_unread(self.app.backend)
        )
        opts = self.options
        try:
            gid = opts["task_id"]
        except KeyError:
            gid = opts["task_id"] = uuid()
        if group_id:
            opts["group_id"] = group_id
        if chord:
            opts["chord"] = chord
        if group_index is not None:
            opts["group_index"] = group_index
        root_id = opts.setdefault("root_id", root_id)
        parent_id = opts.setdefault("parent_id", parent_id)
        if isinstance(self.tasks, _regen):
            # A generator group is frozen lazily: one tee freezes (yielding
            # results), the other replaces the consumed generator.
            tasks1, tasks2 = itertools.tee(self._unroll_tasks(self.tasks))
            results = regen(self._freeze_tasks(tasks1, group_id, chord, root_id, parent_id))
            self.tasks = LazilyFrozen(tasks2)
        else:
            new_tasks: list[Signature] = []
            results = freeze_unroll(
                self.tasks, self._app, new_tasks, group_id, chord, root_id, parent_id, unread
            )
            if isinstance(self.tasks, MutableSequence):
                self.tasks[:] = new_tasks
            else:
                self.tasks = new_tasks
        return gid, results

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        token = _freezing.set(True)
        try:
            frozen = self._freeze_group_tasks(
                _id=_id,
                group_id=group_id,
                chord=chord,
                root_id=root_id,
                parent_id=parent_id,
                group_index=group_index,
            )
        finally:
            _freezing.reset(token)
        return group_result_cls(self.app)(*frozen)

    _freeze = freeze

    def _freeze_tasks(
        self,
        tasks: Any,
        group_id: str | None,
        chord: Any,
        root_id: str | None,
        parent_id: str | None,
    ) -> Any:
        # Empty chains are dropped here as in _prepared (celery #9772).
        yield from (
            freeze_leaf(
                task,
                group_id=group_id,
                chord=chord,
                root_id=root_id,
                parent_id=parent_id,
                group_index=group_index,
            )
            for group_index, task in enumerate(tasks)
            if not (isinstance(task, _chain) and not task.tasks)
        )

    def _freeze_unroll(
        self,
        new_tasks: list[Signature],
        group_id: str | None,
        chord: Any,
        root_id: str | None,
        parent_id: str | None,
    ) -> Any:
        yield from freeze_unroll(
            self.tasks, self._app, new_tasks, group_id, chord, root_id, parent_id
        )


__all__ = ["GroupFreezing", "LazilyFrozen"]

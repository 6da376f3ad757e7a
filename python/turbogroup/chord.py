"""``turbogroup.chord``: the chord that ``turbogroup.group | task`` builds.

Celery's chord re-wraps its header in ``celery.canvas.group`` (looked up in
the canvas module at call time). Without ``install()`` that is Celery's own
group, and the header would be published on Celery's slow path; this
subclass hands the header to ``turbogroup.group`` instead. Everything else
is Celery's chord. As in Celery, the class is ``_chord`` and ``chord`` is
its public name (code that checks a signature's class name sees Celery's).
"""

from __future__ import annotations

from typing import Any

from celery.canvas import _chord as _celery_chord
from celery.canvas import group as _celery_group

from turbogroup.group import adopt, group


def _as_turbogroup(tasks: Any, app: Any) -> Any:
    if isinstance(tasks, _celery_group):
        return adopt(tasks, group)
    return group(tasks, app=app)


class _chord(_celery_chord):  # noqa: N801 - Celery's name
    """A chord whose header is dispatched by :class:`turbogroup.group`."""

    tasks: Any  # the header: a group, a list or a lazily read generator

    def clone(self, *args: Any, **kwargs: Any) -> Any:
        sig = super().clone(*args, **kwargs)
        if type(sig) is _celery_chord:
            sig.__class__ = type(self)
        return sig

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Any = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> Any:
        self.tasks = _as_turbogroup(self.tasks, self.app)
        return super().freeze(
            _id,
            group_id=group_id,
            chord=chord,
            root_id=root_id,
            parent_id=parent_id,
            group_index=group_index,
        )

    def run(self, header: Any, body: Any, partial_args: Any, *args: Any, **kwargs: Any) -> Any:
        return super().run(_as_turbogroup(header, self.app), body, partial_args, *args, **kwargs)


chord = _chord

__all__ = ["chord"]

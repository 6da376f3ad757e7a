"""``barrier``: vine's barrier with its counter in Rust.

``vine.barrier`` is what Celery's ``GroupResult`` waits on: each member
result calls it once when ready and it fires its promise when all have.
The counting (and the decision to fire, made exactly once even when results
arrive on several threads) is ``turbogroup._core.Barrier``; this subclass
only attaches the initial members and callback, which needs the finished
object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vine.abstract import Thenable

from turbogroup._core import Barrier


class barrier(Barrier):  # noqa: N801 - vine's name, so call sites read the same
    """Drop-in for ``vine.barrier`` (same constructor, attributes, methods)."""

    def __init__(
        self,
        promises: Iterable[Any] | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        size: int | None = None,
    ) -> None:
        # Counter, size, args and kwargs were set by Barrier.__new__.
        for p in promises or []:
            self.add_noincr(p)
        self.finalized = bool(promises or self.size)
        if callback:
            self.then(callback)


Thenable.register(Barrier)

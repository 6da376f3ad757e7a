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

from celery.result import AsyncResult, EagerResult
from vine.abstract import Thenable

from turbogroup._compat import RedisBackend
from turbogroup._core import Barrier
from turbogroup.celery_guards import fast_path_enabled


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


def results_barrier(results: Any) -> Any:
    """``barrier(results)``, without its per-child SUBSCRIBE on Redis.

    vine's barrier attaches itself with ``result.then``, which on the Redis
    backend subscribes to every child's channel (~27 µs per child, and 100k
    channels overflow the connection). Our collector fulfils each child's
    ``on_ready`` promise when it reads the result, so attaching to that
    promise directly gives the same barrier with nothing subscribed.
    """
    if not isinstance(results, (list, tuple)) or not results:
        return barrier(results)  # lazy (regen) or empty: exactly vine's rules
    # A nested set's app may be current_app's, which need not be set: only
    # a plain result's is read (and only plain results are attached below).
    app = next((r.app for r in results if isinstance(r, AsyncResult)), None)
    if not fast_path_enabled(app):
        return barrier(results)  # Celery's own path, subscriptions included
    b = barrier(size=len(results))
    # vine marks the barrier finalized only after attaching every member:
    # an eager result calls back while being attached and must not fire it.
    b.finalized = False
    for result in results:
        if (
            isinstance(result, AsyncResult)
            and not isinstance(result, EagerResult)
            and isinstance(result.backend, RedisBackend)
        ):
            result.on_ready.then(b)
        else:
            b.add_noincr(result)
    b.finalized = True
    return b

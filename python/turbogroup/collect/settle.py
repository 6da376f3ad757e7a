"""Caching fetched metas on their results, as Celery's ``_maybe_set_cache``
does, with a shorter path for the common case.

For every meta Celery reads (``AsyncResult._get_task_meta``), the backend
applies ``meta_from_decoded`` (exceptions rebuilt) and the result then
runs ``_maybe_set_cache``: a ready meta goes through ``meta_from_decoded``
again and ``_set_cache`` (children turned into results), and the result's
``on_ready`` promise is called, which runs ``_on_fulfilled`` (the
backend's ``remove_pending_result``) and then every callback attached with
``then`` -- among them the group's ready barrier. The caching is
Celery-observable (``then`` callbacks, the barrier, a later ``.result``
served without a round trip even if the key expired meanwhile), so the
state queries cache too, exactly when Celery would.

That is ~3 µs of Python per result. For a SUCCESS meta without children,
on a result whose class and promise are Celery's and vine's own, and while
``remove_pending_result`` would do nothing (no channel subscribed, no
result registered on the backend), all of it comes down to: set ``_cache``,
mark the promise fulfilled with ``((result,), {})``, then call its
callbacks in order and drop them -- which :func:`_fulfil_success` does with
vine's own ordering and clean-up. Any other meta or result goes through
Celery's ``_maybe_set_cache`` unchanged.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from celery import states
from celery.backends.base import Backend, SyncBackendMixin
from celery.result import AsyncResult
from vine import promise

from turbogroup._compat import RedisBackend
from turbogroup._core import QuickFulfilment

try:
    from celery.backends.redis import ResultConsumer
except ImportError:  # redis-py is not installed: no Redis backend to settle for
    ResultConsumer = None

#: ``decoded`` entry of a node that was cached when its batch was fetched.
NOT_FETCHED = object()

_deref: Callable[[weakref.ref[Any]], Any] = weakref.ref.__call__
_ON_FULFILLED = AsyncResult._on_fulfilled
_READY = states.READY_STATES
_SUCCESS = states.SUCCESS

#: The backend methods ``AsyncResult._on_fulfilled`` runs; when they are
#: Celery's, nothing subscribed and nothing registered, they do nothing.
_REMOVAL_PATH = ("remove_pending_result", "_remove_pending_result", "on_result_fulfilled")
#: The result methods whose work the short path does.
_CACHE_PATH = ("_maybe_set_cache", "_set_cache", "_on_fulfilled")


def _is_celerys_result_class(kind: type) -> bool:
    return issubclass(kind, AsyncResult) and all(
        getattr(kind, name) is getattr(AsyncResult, name) for name in _CACHE_PATH
    )


def _fulfil_success(node: AsyncResult, meta: dict[str, Any]) -> bool:
    """``node._maybe_set_cache(meta)`` for a SUCCESS meta with no children,
    when ``node.on_ready`` is the promise ``AsyncResult.__init__`` made and
    ``remove_pending_result(node)`` is known to do nothing. False (and
    nothing done) when the promise is not that."""
    p = node.on_ready
    if type(p) is not promise or p.cancelled or p.args or p.kwargs or p.ignore_result:
        return False
    fun = p.fun
    if (
        not p.weak
        or type(fun) is not weakref.WeakMethod
        or _deref(fun) is not node
        # The method's function, read without making a bound method.
        or fun._func_ref() is not _ON_FULFILLED  # type: ignore[attr-defined]
    ):
        return False
    # _set_cache: no children to turn into results.
    node._cache = meta
    # vine.promise.__call__(node): _on_fulfilled(node) returns node, which
    # becomes the value handed to each callback; callbacks run in order and
    # are dropped even when one raises (which propagates, as in Celery).
    p.value = ((node,), {})
    p.ready = True
    single = p._svpending
    if single is not None:
        try:
            single(node)
        finally:
            p._svpending = None
    else:
        pending = p._lvpending
        try:
            while pending:
                pending.popleft()(node)
        finally:
            p._lvpending = None
    return True


def fulfil_quietly(node: AsyncResult, meta: dict[str, Any]) -> bool:
    """Cache ``meta`` on a result just made, its ``on_ready`` marked
    fulfilled, as ``_maybe_set_cache`` did when the meta was read for it
    (``turbogroup.lazy.LazyResults``: its ``remove_pending_result`` did
    nothing then, and nothing is attached to the new promise). False, with
    nothing done, when the promise is not vine's own."""
    return _fulfil_success(node, meta)


def redis_removal_is_celerys(backend: Any) -> bool:
    """Whether ``backend`` is a Redis backend whose removal of a result from
    its pending registry is Celery's own code end to end (the backend's
    methods and its result consumer's ``cancel_for``)."""
    cls = type(backend)
    return (
        isinstance(backend, RedisBackend)
        and ResultConsumer is not None
        and all(getattr(cls, name) is getattr(RedisBackend, name) for name in _REMOVAL_PATH)
        and type(backend.result_consumer).cancel_for is ResultConsumer.cancel_for
    )


def untracked_by(backend: Any) -> Callable[[str], bool]:
    """For a Redis backend: whether Celery's ``remove_pending_result`` of a
    result with this id does nothing at this moment: no result object is
    registered under the id, its channel is not subscribed and no
    UNSUBSCRIBE is waiting (``cancel_for`` would flush it). Read live at
    each call, so results other code subscribed (a dispatch by Celery's
    own group, a restored group's ready barrier) send only their own ids
    through Celery's bookkeeping, not every result collected."""
    consumer = backend.result_consumer
    subscribed = consumer.subscribed_to
    waiting = getattr(consumer, "_pending_unsubscribe", None)
    key_for = backend.get_key_for_task

    def untracked(task_id: str) -> bool:
        if waiting or (subscribed and key_for(task_id) in subscribed):
            return False
        return not any(task_id in mapping for mapping in backend._pending_results if mapping)

    return untracked


def mark_quick(fn: Any) -> Any:
    """Tags ``quick_fulfilment``'s ``remove_pending_result`` stand-in, which
    defers to Celery's whenever the removal could do anything."""
    fn._turbogroup_quick = True
    return fn


class Settler:
    """Applies fetched metas to their results exactly as Celery's
    per-result read does."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._kinds: dict[type, bool] = {}
        cls = type(backend)
        self.plain_meta = cls.meta_from_decoded is Backend.meta_from_decoded
        # A synchronous backend's (the database's) removal returns the
        # result and does nothing else; Redis's does nothing only while no
        # channel is subscribed and no result registered.
        self._sync_removal = (
            isinstance(backend, SyncBackendMixin)
            and cls.remove_pending_result is SyncBackendMixin.remove_pending_result
        )
        self._celery_removal = self._sync_removal or redis_removal_is_celerys(backend)
        #: How many results the Rust loop cached and fulfilled (tests read
        #: it to see the short path did the work).
        self.quickly_fulfilled = 0

    def _celery_removal_now(self) -> bool:
        """Whether ``remove_pending_result`` is Celery's (or our stand-in
        that defers to it), so that it does nothing for any result while no
        channel is subscribed and no result registered."""
        if not self._celery_removal:
            return False
        own = self.backend.__dict__.get("remove_pending_result")
        return own is None or getattr(own, "_turbogroup_quick", False)

    def _quick_kind(self, kind: type) -> bool:
        quick = self._kinds.get(kind)
        if quick is None:
            quick = self._kinds[kind] = _is_celerys_result_class(kind)
        return quick

    def settle(
        self,
        nodes: Sequence[AsyncResult],
        decoded: Sequence[Any],
        until: Callable[[Any], bool] | None = None,
    ) -> list[Any]:
        """What ``node._get_task_meta()`` returns for each node in order,
        with ``decoded`` (the node's decoded payload, None when nothing is
        stored, :data:`NOT_FETCHED` when it was cached) standing in for the
        backend read: a node cached meanwhile gives its cache;
        ``meta_from_decoded`` is applied, and a ready meta is cached on the
        node (its ``on_ready`` fired). Stops after the first node whose
        status satisfies ``until``, as Celery's ``all()``/``any()`` over
        the results stop: later nodes are neither decoded nor cached.

        Runs of SUCCESS metas go through ``_core.QuickFulfilment`` (the
        short path without bytecode per result); each node it hands back
        is settled here, then it goes on from the next."""
        backend = self.backend
        quick = self._celery_removal_now()
        # Tested before each result: a callback fired by an earlier one
        # may subscribe or register results.
        tracked = quick and not self._sync_removal
        one = _OneSettle(self, quick, untracked_by(backend) if tracked else None)
        rust = self._quick_fulfilment(nodes, decoded, until, quick, tracked)
        out: list[Any] = []
        i = 0
        # Lengths read at each step, as zip would: a callback may change them.
        while i < min(len(nodes), len(decoded)):
            if rust is not None:
                i, fulfilled = rust(i, out)
                self.quickly_fulfilled += fulfilled
                if i >= min(len(nodes), len(decoded)):
                    break
            meta = one.settle(nodes[i], decoded[i])
            out.append(meta)
            i += 1
            if until is not None and until(meta["status"]):
                break
        return out

    def _quick_fulfilment(
        self, nodes: Any, decoded: Any, until: Any, quick: bool, tracked: bool
    ) -> Callable[[int, list[Any]], tuple[int, int]] | None:
        """The Rust loop over ``nodes`` from a start index, where it does
        exactly what the Python one does: lists of nodes and metas, no
        ``until`` (it checks no status), the backend's
        ``meta_from_decoded`` Celery's own."""
        if not (quick and self.plain_meta and until is None):
            return None
        if type(nodes) is not list or type(decoded) is not list:
            return None
        # Judged here for every class at once: a run of results the Rust
        # loop would hand back one by one (turbogroup's LazyNode, a user's
        # result class) stays in the Python loop.
        if not all([self._quick_kind(kind) for kind in set(map(type, nodes))]):
            return None
        backend = self.backend
        registries = None
        if tracked:
            subscribed = backend.result_consumer.subscribed_to
            registries = (subscribed, tuple(backend._pending_results))
        run = QuickFulfilment(promise, _ON_FULFILLED, self._kinds, registries).run
        return partial(run, nodes, decoded)


class _OneSettle:
    """One node's ``_get_task_meta()`` from its fetched payload, in Python:
    every case the Rust loop hands back."""

    def __init__(self, settler: Settler, quick: bool, untracked: Callable[[str], bool] | None):
        backend = settler.backend
        self.settler = settler
        self.quick = quick
        self.untracked = untracked
        self.from_decoded = backend.meta_from_decoded
        self.exception_states = backend.EXCEPTION_STATES
        self.subscribed = backend.result_consumer.subscribed_to if untracked else None
        self.registries = backend._pending_results if untracked else ()

    def settle(self, node: AsyncResult, meta: Any) -> Any:
        cached = node._cache
        if cached is not None:
            return cached
        if meta is None:
            return {"status": states.PENDING, "result": None}
        if meta is NOT_FETCHED:
            # Its cache was dropped (``forget()``) by a callback that ran
            # since the fetch: Celery's own read.
            return node._get_task_meta()
        # Celery's meta_from_decoded only touches exception states.
        if not self.settler.plain_meta or meta["status"] in self.exception_states:
            meta = self.from_decoded(meta)
        status = meta["status"]
        if status not in _READY:
            return meta
        if not (
            self.quick
            and status == _SUCCESS
            and self._untracked(node)
            and type(meta) is dict
            and not meta.get("children")
            and self.settler._quick_kind(type(node))
            and _fulfil_success(node, meta)
        ):
            node._maybe_set_cache(meta)
            meta = node._cache
        return meta

    def _untracked(self, node: AsyncResult) -> bool:
        untracked = self.untracked
        return (
            untracked is None
            or (not self.subscribed and not any(self.registries))
            or untracked(node.id)
        )

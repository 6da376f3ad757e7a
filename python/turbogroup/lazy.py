"""A dispatched group's results kept as task ids until first touched.

``LazyResults`` stands in for the list of ``AsyncResult`` objects a
``GroupResult`` holds; ``LazyNode`` stands in for one child while the
collector reads it (see ``LazyResults``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import states
from celery.app.task import Task
from celery.result import result_from_tuple

from turbogroup import _core
from turbogroup._compat import RedisBackend
from turbogroup._gc import gc_paused
from turbogroup.celery_guards import unproxied
from turbogroup.collect.decode import decode_json_batch
from turbogroup.collect.redis import reads_like_celery
from turbogroup.collect.settle import NOT_FETCHED, fulfil_quietly


def result_maker(task: Task) -> Any:
    """What ``Signature.freeze`` calls to make a child's result, bound now:
    ``Task.AsyncResult`` reads ``task.backend``, which is per thread, and
    the results may be made in another thread than the dispatch. A task
    held through Celery's proxy (``shared_task``) is its task."""
    task = unproxied(task)
    if getattr(type(task), "AsyncResult", None) is not Task.AsyncResult:
        return task.AsyncResult  # the task's own: called as Celery would
    return partial(task._get_app().AsyncResult, backend=task.backend, task_name=task.name)


def signature_result_maker(sig: Any) -> Any:
    """``sig.AsyncResult`` (``Signature.AsyncResult``): its task's, or the
    app's for a task not registered in this process (sent by name)."""
    try:
        task = sig.type
    except KeyError:
        return sig.app.AsyncResult
    return result_maker(task)


class LazyResults:
    """A dispatched group's results, kept as their task ids until first
    touched (measured: 100k ``AsyncResult`` objects cost ~1 KiB
    and several µs each, and most groups are only collected).

    ``materialize()`` makes each ``AsyncResult`` as ``Signature.freeze``
    would have (``make`` is the child's ``Task.AsyncResult``) and attaches
    it to the group's ready barrier as the dispatch would have. It runs
    once, under a lock: attaching twice would count a child twice.

    Until then the group can be collected from the ids (``nodes()``): on
    Celery's Redis backend, while nothing is subscribed or registered (so
    that fulfilling a result would do nothing but fire its callbacks), a
    ready meta is kept on the child's stand-in and counted on the ready
    barrier once, which is all that caching it on the result and firing
    its ``on_ready`` would do, since only the barrier is attached to it. A
    result made later gets that meta as its cache, already fulfilled.
    """

    __slots__ = (
        "_attach",
        "_backends",
        "_entries",
        "_made",
        "_makers",
        "_nodes",
        "_settling",
    )

    def __init__(
        self,
        attach: Callable[[Any], Any] | None,
        on_child_ready: Callable[[], Any] | None = None,
    ) -> None:
        # task ids in group order, 16 bytes each, not Python strings: a
        # million kept as strings held ~190 MiB of the client's memory
        # (the strings, and the allocator arenas they pinned)
        self._entries = _core.TaskIds()
        self._makers: list[tuple[int, Callable[[str], Any]]] = []
        self._attach = attach
        self._settling = ChildSettling(on_child_ready)
        self._made: list[Any] | None = None
        self._nodes: list[LazyNode] | None = None
        self._backends: dict[int, Any] = {}

    @classmethod
    def counted_by(cls, p: Any, unsubscribed: bool) -> LazyResults:
        """Results the group's ready barrier ``p`` counts, as Celery's
        ``results_barrier`` attaches them: a Redis result with nothing
        subscribed (``unsubscribed``) through its ``on_ready`` promise, and
        then, while kept as ids, ``p`` is what a child settled from its id
        calls; any other result as ``result.then(p, weak=True)``, made
        before it is collected."""
        if unsubscribed:
            return cls(lambda result: result.on_ready.then(p), p)
        return cls(partial(_then_weakly, p))

    def add_id(self, task_id: str, make: Callable[[str], Any]) -> None:
        self.column_for(make).append(task_id)

    def column_for(self, make: Callable[[str], Any]) -> _core.TaskIds:
        """The id column, where the ids appended next have their results
        made by ``make``."""
        if not self._makers or self._makers[-1][1] is not make:
            self._makers.append((len(self._entries), make))
            backend = getattr(make, "keywords", {}).get("backend")
            self._backends[id(backend)] = backend
        return self._entries

    def __len__(self) -> int:
        return len(self._entries) if self._made is None else len(self._made)

    @property
    def backend(self) -> Any:
        """The backend every result will have, or None."""
        if len(self._backends) != 1:
            return None
        return next(iter(self._backends.values()))

    def nodes(self) -> list[LazyNode] | None:
        """Stand-ins the collector can read and settle, or None where the
        results must be made (module docstring's conditions)."""
        with self._settling.lock:
            if self._made is not None or self._settling.on_child_ready is None:
                return None
            backend = self.backend
            if not (
                isinstance(backend, RedisBackend)
                and reads_like_celery(type(backend))
                and not backend.result_consumer.subscribed_to
                and not any(backend._pending_results)
            ):
                return None
            if self._nodes is None:
                with gc_paused(len(self._entries)):  # as materialize(): many objects
                    self._nodes = [
                        LazyNode(task_id, self._settling, backend)
                        for task_id in self._entries.tolist()
                    ]
            return self._nodes

    def settle_all(self, nodes: list[LazyNode], decoded: list[Any]) -> list[Any]:
        """``Settler.settle(nodes, decoded)`` for this group's stand-ins
        (the backend's ``meta_from_decoded`` being Celery's), in one loop
        (``_core.settle_stand_ins``): each node's ``_get_task_meta()`` from
        its fetched payload, a SUCCESS meta without children cached. The
        barrier is counted once per node cached so, after the loop and
        outside the lock (a callback it fires may make the results); it can
        only fire at the last of them, when every cache is set, as it would
        one by one. The other metas (exceptions, children, payloads read
        again) are then settled one by one, as ``_OneSettle`` does."""
        settling = self._settling
        with settling.lock:
            if self._made is None:
                exception_states = nodes[0]._backend.EXCEPTION_STATES if nodes else ()
                out, later, newly = _core.settle_stand_ins(
                    nodes, decoded, exception_states, NOT_FETCHED
                )
                fire = settling.on_child_ready
            else:  # made meanwhile: each through its result's owner
                out = [None] * min(len(nodes), len(decoded))
                later, newly, fire = list(range(len(out))), 0, None
        if fire is not None:
            for _ in range(newly):
                fire()
        for i in later:
            node, meta = nodes[i], decoded[i]
            if node._cache is not None:
                out[i] = node._cache
            elif meta is None:
                out[i] = {"status": states.PENDING, "result": None}
            elif meta is NOT_FETCHED:
                out[i] = node._get_task_meta()
            else:
                out[i] = node._maybe_set_cache(node._backend.meta_from_decoded(meta))
        return out

    def settle_states(
        self,
        nodes: list[LazyNode],
        payloads: list[Any],
        decode: Callable[[list[Any]], list[Any]],
    ) -> list[Any] | None:
        """The states of stand-ins that had no meta when their ``payloads``
        were read (a state query: ``completed_count()`` and the like),
        without building the metas of plain successes: each is kept as its
        payload, counted ready, and decoded when its meta is first read
        (``_core.keep_plain_successes``). The other payloads are decoded
        first (``decode``: the collector's), so a payload Celery's decoder
        refuses raises before anything is kept, and then settled as
        ``settle_all`` settles them. None when the results were made
        meanwhile (the caller then reads them as results)."""
        undecided = _core.undecided_payloads(payloads)
        decoded = decode([payloads[i] for i in undecided]) if undecided else []
        settling = self._settling
        with settling.lock:
            if self._made is not None:
                return None
            found, kept = _core.keep_plain_successes(nodes, payloads, undecided)
            fire = settling.on_child_ready
        if fire is not None:
            for _ in range(kept):
                fire()
        if undecided:
            metas = self.settle_all([nodes[i] for i in undecided], decoded)
            for i, meta in zip(undecided, metas):
                found[i] = meta["status"]
        return found

    def materialize(self) -> list[Any]:
        with self._settling.lock:
            if self._made is None:
                # Many new objects at once: a cyclic GC pass every few
                # hundred of them would walk the whole heap again and again.
                with gc_paused(len(self._entries)):
                    self._made = self._make()
                self._settling.made = True
                self._entries = _core.TaskIds()
            return self._made

    def _make(self) -> list[Any]:
        made: list[Any] = self._entries.tolist()
        attach, nodes = self._attach, self._nodes
        ends = [start for start, _ in self._makers[1:]] + [len(made)]
        for (first, make), end in zip(self._makers, ends):
            for i in range(first, end):
                made[i] = result = make(made[i])
                cached = nodes[i]._cache if nodes is not None else None
                if cached is None:
                    if attach is not None:
                        attach(result)
                elif not fulfil_quietly(result, cached):
                    result._cache = cached
        return made


def _then_weakly(p: Any, result: Any) -> None:
    result.then(p, weak=True)


class ChildSettling:
    """What a group's stand-ins share with their ``LazyResults``: its lock,
    whether its results were made, and what counts a child ready (the
    group's barrier). Kept apart so that the stand-ins, which the group
    holds, do not hold the group: a dropped group is freed at once, not
    left to the cyclic collector with every stand-in and meta."""

    __slots__ = ("lock", "made", "on_child_ready")

    def __init__(self, on_child_ready: Callable[[], Any] | None) -> None:
        # Reentrant: a stand-in's kept payload is decoded under it, also
        # where a holder of the lock reads the stand-in's meta.
        self.lock = threading.RLock()
        self.made = False
        self.on_child_ready = on_child_ready

    def settle(self, node: LazyNode, meta: dict[str, Any]) -> dict[str, Any]:
        """``_maybe_set_cache`` of a ready meta, for the result not made yet."""
        backend = node._backend
        meta = backend.meta_from_decoded(meta)
        children = meta.get("children")
        if children:  # AsyncResult._set_cache
            app = backend.app
            meta["children"] = [result_from_tuple(child, app) for child in children]
        with self.lock:
            if node._cache is not None:
                return node._cache  # settled meanwhile by another thread
            node._meta = meta
            fire = None if self.made else self.on_child_ready
        if fire is not None:
            fire()
        return meta

    def decode_kept(self, node: LazyNode) -> dict[str, Any]:
        """The meta of a stand-in kept as its payload, decoded once: what
        Celery's backend would have cached when the state query read it
        (``backend.decode`` as the collector decodes, then
        ``meta_from_decoded``; a SUCCESS without children, so nothing to
        rebuild). It was counted ready when kept."""
        with self.lock:
            if node._meta is None:
                raw = node._raw
                values, needs_kombu = decode_json_batch([raw])
                backend = node._backend
                decoded = backend.decode(raw) if needs_kombu else values[0]
                node._meta = backend.meta_from_decoded(decoded)
                node._raw = None
            return node._meta


class LazyNode:
    """A child kept as its id, as the collector sees a result: ``id``,
    ``_cache``, ``_maybe_set_cache`` and ``_get_task_meta``, with
    Celery's meaning (see ``LazyResults``). A ready SUCCESS counted by a
    state query may be kept as its stored payload (``_raw``) and decoded
    into ``_cache`` when first read (``LazyResults.settle_states``)."""

    __slots__ = ("_backend", "_meta", "_raw", "_settling", "id")

    def __init__(self, task_id: str, settling: ChildSettling, backend: Any) -> None:
        self.id = task_id
        self._meta: dict[str, Any] | None = None
        self._raw: bytes | None = None
        self._settling = settling
        self._backend = backend

    @property
    def _cache(self) -> dict[str, Any] | None:
        if self._meta is None and self._raw is not None:
            return self._settling.decode_kept(self)
        return self._meta

    @_cache.setter
    def _cache(self, meta: dict[str, Any] | None) -> None:
        self._meta = meta

    def _maybe_set_cache(self, meta: dict[str, Any] | None) -> Any:
        if meta and meta["status"] in states.READY_STATES:
            return self._settling.settle(self, meta)
        return meta

    def _get_task_meta(self) -> Any:
        cache = self._cache
        if cache is None:
            return self._maybe_set_cache(self._backend.get_task_meta(self.id))
        return cache

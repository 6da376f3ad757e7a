"""``GroupResult`` and ``ResultSet``: Celery's, with the ready barrier
counting in Rust and, on the Redis and database result backends,
collection in batches.

Every public method keeps Celery 5.7.0's semantics. On those backends
``get``/``join_native``/``join``, ``completed_count``/``ready``/
``successful``/``failed``/``waiting`` and ``maybe_throw`` read all pending
results in one bulk read per poll (see ``turbogroup.collect``); on any
other backend Celery's own code runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import states
from celery.exceptions import ImproperlyConfigured
from celery.result import AsyncResult, assert_will_not_block
from celery.result import GroupResult as CeleryGroupResult
from celery.result import ResultSet as CeleryResultSet

from turbogroup._gc import gc_paused
from turbogroup.barrier import barrier, results_barrier
from turbogroup.celery_guards import fast_path_enabled
from turbogroup.collect.choose import collector_for
from turbogroup.collect.collector import Collector
from turbogroup.collect.redis import RedisCollector
from turbogroup.lazy import LazyResults
from turbogroup.progress import ProgressFn, progress_reporter


def _successful(state: Any) -> bool:
    if isinstance(state, list):
        return all(_successful(s) for s in state)
    return state == states.SUCCESS


def _not_successful(state: Any) -> bool:
    return state != states.SUCCESS


def _ready(state: Any, ready_states: Any) -> bool:
    if isinstance(state, list):
        return all(_ready(s, ready_states) for s in state)
    return state in ready_states


def _failed(state: Any) -> bool:
    if isinstance(state, list):
        return any(_failed(s) for s in state)
    return state == states.FAILURE


class BatchedCollection(CeleryResultSet):
    """The collection methods of ``ResultSet``, batched on Redis."""

    _results: Any = None

    @property
    def results(self) -> Any:
        results = self._results
        if type(results) is LazyResults:
            results = self._results = results.materialize()
        return results

    @results.setter
    def results(self, value: Any) -> None:
        self._results = value

    def __len__(self) -> int:
        return len(self._results)

    @property
    def supports_native_join(self) -> Any:
        # Celery asks the first result, which asks its backend: ask the
        # backend the kept ids' results will have, without making them.
        kept = self._results
        if type(kept) is LazyResults and len(kept) and kept.backend is not None:
            return kept.backend.supports_native_join
        return super().supports_native_join

    def __init__(
        self, results: list[Any] | None, app: Any = None, ready_barrier: Any = None, **kwargs: Any
    ) -> None:
        if ready_barrier is None:
            ready_barrier = results_barrier(results)
        # Explicitly ResultSet's: in GroupResult's MRO the next __init__
        # would be celery's GroupResult, which takes the id first.
        CeleryResultSet.__init__(self, results, app=app, ready_barrier=ready_barrier, **kwargs)

    def add(self, result: AsyncResult) -> None:
        # Same rules as celery.result.ResultSet.add; only the replacement
        # barrier made after the first one fired is ours, not vine's.
        if result not in self.results:
            self.results.append(result)
            if self._on_full:
                if self._on_full.p.ready:
                    self._setready_barrier(barrier())
                    self._on_full.add(result)
                    self._on_full.finalize()
                else:
                    self._on_full.add(result)

    def _collector(self) -> Collector | None:
        """The batched collector, with ``nodes`` (what it walks) set: the
        results, or for results still kept as ids their stand-ins
        (``LazyResults.nodes``); None on a backend Celery reads itself, or
        where the app must take Celery's own path (``celery_guards``)."""
        if not fast_path_enabled(self.app):
            return None
        kept = self._results
        if type(kept) is LazyResults:
            nodes = kept.nodes()
            if nodes is not None:
                return RedisCollector(kept.backend, nodes, kept.settle_all, kept.settle_states)
        results = self.results
        return collector_for(results) if results else None

    def _states(
        self,
        collector: Collector,
        until: Callable[[Any], bool] | None = None,
        nested_until: Callable[[Any], bool] | None = None,
    ) -> list[Any]:
        # ``until``: where Celery's all()/any() over the children stops
        # reading them; ``nested_until``, within a nested set, where not
        # the same (see Collector.states).
        with gc_paused(len(collector.nodes)):
            return collector.states(collector.nodes, until, nested_until)

    def maybe_throw(
        self, callback: Callable[[str, Any], Any] | None = None, propagate: bool = True
    ) -> None:
        """Celery's loop of ``result.maybe_throw`` over the results, with
        every uncached result read first in one bulk read (stopping at the
        first failure to raise, as Celery's loop stops). Celery calls this
        on a chord's or chain's parent group at each poll of ``get()``."""
        results = self.results
        collector = collector_for(results) if results and fast_path_enabled(self.app) else None
        if collector is None or any(isinstance(r, CeleryResultSet) for r in results):
            return super().maybe_throw(callback=callback, propagate=propagate)
        stop = (lambda state: state in states.PROPAGATE_STATES) if propagate else None
        with gc_paused(len(results)):
            metas = collector.fetch(results, stop)
        # metas stops at the first failure to raise, which raises below.
        for result, meta in zip(results, metas):
            if result._cache is not None:
                result.maybe_throw(callback=callback, propagate=propagate)
                continue
            # What AsyncResult.maybe_throw does with the meta its own read
            # would have given (the result did not cache it).
            state, value = meta["status"], meta["result"]
            if state in states.PROPAGATE_STATES and propagate:
                result.throw(value, result._to_remote_traceback(meta.get("traceback")))
            if callback is not None:
                callback(result.id, value)
        return None

    def completed_count(self) -> int:
        collector = self._collector()
        if collector is None:
            return super().completed_count()
        # Celery sums each child's successful(): a nested set's stops at
        # its first child that did not succeed.
        found = self._states(collector, nested_until=_not_successful)
        if list not in set(map(type, found)):
            # sum(int(s == SUCCESS)) over plain states, at C speed.
            return found.count(states.SUCCESS)
        return sum(int(_successful(s)) for s in found)

    def ready(self) -> bool:
        collector = self._collector()
        if collector is None:
            return super().ready()
        # AsyncResult.ready reads the backend's READY_STATES.
        ready = collector.backend.READY_STATES
        return all(_ready(s, ready) for s in self._states(collector, lambda s: s not in ready))

    def successful(self) -> bool:
        collector = self._collector()
        if collector is None:
            return super().successful()
        found = self._states(collector, lambda s: s != states.SUCCESS)
        return all(_successful(s) for s in found)

    def failed(self) -> bool:
        collector = self._collector()
        if collector is None:
            return super().failed()
        return any(_failed(s) for s in self._states(collector, lambda s: s == states.FAILURE))

    def waiting(self) -> bool:
        collector = self._collector()
        if collector is None:
            return super().waiting()
        ready = collector.backend.READY_STATES
        found = self._states(collector, lambda s: s not in ready)
        return any(not _ready(s, ready) for s in found)

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], Any] | None = None,
        *,
        on_progress: ProgressFn | None = None,
        progress: bool = False,
    ) -> Any:
        """Celery's ``get``; ``on_progress(done, total)`` and ``progress``
        (a tqdm bar) are turbogroup's keyword-only additions."""
        join = self.join_native if self.supports_native_join else self.join
        return join(
            timeout=timeout,
            propagate=propagate,
            interval=interval,
            callback=callback,
            no_ack=no_ack,
            on_message=on_message,
            disable_sync_subtasks=disable_sync_subtasks,
            on_interval=on_interval,
            on_progress=on_progress,
            progress=progress,
        )

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        disable_sync_subtasks: bool = True,
        on_interval: Callable[[], Any] | None = None,
        *,
        on_progress: ProgressFn | None = None,
        progress: bool = False,
    ) -> Any:
        celery_kwargs = {
            "timeout": timeout,
            "propagate": propagate,
            "interval": interval,
            "callback": callback,
            "no_ack": no_ack,
            "on_message": on_message,
            "disable_sync_subtasks": disable_sync_subtasks,
            "on_interval": on_interval,
        }
        collector = self._collector()
        if collector is None:
            return self._unbatched(super().join, celery_kwargs, on_progress, progress)
        if disable_sync_subtasks:
            assert_will_not_block()
        if on_message is not None:
            raise ImproperlyConfigured("Backend does not support on_message callback")

        def nested(node: Any) -> Any:
            # Celery's join calls get() on a nested result set.
            return node.get(
                timeout=timeout,
                propagate=propagate,
                interval=interval,
                no_ack=no_ack,
                on_interval=on_interval,
                disable_sync_subtasks=disable_sync_subtasks,
            )

        values = self._batched(collector, celery_kwargs, on_progress, progress, True, nested)
        # Celery's join returns an empty list when a callback took the values.
        return [] if values is None else values

    def join_native(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], Any] | None = None,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        disable_sync_subtasks: bool = True,
        *,
        on_progress: ProgressFn | None = None,
        progress: bool = False,
    ) -> Any:
        celery_kwargs = {
            "timeout": timeout,
            "propagate": propagate,
            "interval": interval,
            "callback": callback,
            "no_ack": no_ack,
            "on_message": on_message,
            "on_interval": on_interval,
            "disable_sync_subtasks": disable_sync_subtasks,
        }
        collector = self._collector()
        if collector is None:
            return self._unbatched(super().join_native, celery_kwargs, on_progress, progress)
        if disable_sync_subtasks:
            assert_will_not_block()
        self._on_full.finalize()

        def nested(node: Any) -> Any:
            # Celery's native join gets each child of a nested result set.
            return [
                child.get(propagate=propagate, disable_sync_subtasks=disable_sync_subtasks)
                for child in node.results
            ]

        return self._batched(collector, celery_kwargs, on_progress, progress, False, nested)

    def _batched(
        self,
        collector: Collector,
        celery_kwargs: dict[str, Any],
        on_progress: ProgressFn | None,
        progress: bool,
        in_order: bool,
        nested: Callable[[Any], Any],
    ) -> list[Any] | None:
        report, close = progress_reporter(progress, on_progress, len(self), "collecting")
        try:
            with gc_paused(len(self)):
                return collector.collect(
                    collector.nodes,
                    timeout=celery_kwargs["timeout"],
                    propagate=celery_kwargs["propagate"],
                    interval=celery_kwargs["interval"],
                    callback=celery_kwargs["callback"],
                    on_message=celery_kwargs["on_message"],
                    on_interval=celery_kwargs["on_interval"],
                    on_progress=report,
                    in_order=in_order,
                    nested=nested,
                )
        finally:
            close()

    def _unbatched(
        self,
        join: Callable[..., Any],
        celery_kwargs: dict[str, Any],
        on_progress: ProgressFn | None,
        progress: bool,
    ) -> Any:
        """Celery's own join on a backend we don't batch; progress is then
        reported once, when everything is collected."""
        value = join(**celery_kwargs)
        report, close = progress_reporter(progress, on_progress, len(self), "collecting")
        if report is not None:
            report(len(self), len(self))
        close()
        return value


class ResultSet(BatchedCollection):
    """A ``celery.result.ResultSet`` with batched collection on Redis."""


class GroupResult(BatchedCollection, CeleryGroupResult):
    """A ``celery.result.GroupResult`` (every public behaviour unchanged)
    whose ready barrier is :class:`turbogroup.barrier.barrier` and whose
    results are collected in batches on the Redis backend."""

    def __init__(
        self,
        id: str | None = None,  # noqa: A002 - Celery's parameter name
        results: list[Any] | None = None,
        parent: Any = None,
        **kwargs: Any,
    ) -> None:
        self.id = id
        self.parent = parent
        BatchedCollection.__init__(self, results, **kwargs)

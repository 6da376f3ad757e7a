"""``turbogroup.group``: Celery 5.7.0's ``group`` with its hot loops in Rust.

A subclass of ``celery.canvas.group``, so ``isinstance`` checks in user code
and in Celery hold. Only the methods that create ids, unroll, freeze or wait
are overridden; each keeps Celery's semantics line for line (the comments
name the Celery quirk kept where one is).
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from dataclasses import replace
from functools import partial
from typing import Any

from celery.backends.base import SyncBackendMixin
from celery.canvas import Signature, _chain, _chord
from celery.canvas import group as _celery_group
from celery.result import GroupResult as _CeleryGroupResult
from celery.utils import abstract
from celery.utils.functional import _regen

from turbogroup._gc import THRESHOLD as GC_PAUSE_THRESHOLD
from turbogroup._gc import gc_paused
from turbogroup._unroll import freeze_leaf
from turbogroup.app_results import group_result_cls
from turbogroup.barrier import barrier
from turbogroup.celery_guards import setting, unproxied
from turbogroup.chains import ChildCall, into_batch
from turbogroup.dispatch import GroupCall, Sending, amqp_fast_path, open_sending
from turbogroup.errors import note_child
from turbogroup.freezing import GroupFreezing
from turbogroup.lazy import LazyResults
from turbogroup.plain import PlainDispatch
from turbogroup.plain_chains import celerys_chain_steps, chains_allowed
from turbogroup.plain_children import plain_children
from turbogroup.progress import DispatchProgress, ProgressFn
from turbogroup.publish.deferred import DeferringProducer
from turbogroup.publish.signals import child_publish
from turbogroup.result import BatchedCollection


def _task_name(sig: Any) -> str | None:
    try:
        return sig.get("task") or type(sig).__name__
    except (AttributeError, TypeError):
        return None


def _noting(publish: Any, position: int, sig: Any, nothing_sent: bool) -> Any:
    """``publish()``, naming the child if it raises (the fast path calls it
    later, when the child's message turns out to need Celery's path)."""
    try:
        return publish()
    except Exception as exc:
        note_child(exc, position, _task_name(sig), nothing_sent)
        raise


def adopt(sig: Any, cls: type) -> Any:
    """Give a signature that Celery rebuilt as its own ``group`` (``clone``
    and ``from_dict`` go through ``Signature.TYPES``) our class back."""
    if type(sig) is _celery_group:
        sig.__class__ = cls
    return sig


class group(GroupFreezing, _celery_group):  # noqa: N801 - Celery's name
    """Creates a group of tasks to be executed in parallel.

    Same constructor, options and results as ``celery.group``; see
    ``celery.canvas.group``.
    """

    tasks: Any  # a list, a tuple or a lazily read generator, as in Celery

    def clone(self, *args: Any, **kwargs: Any) -> Any:
        return adopt(super().clone(*args, **kwargs), type(self))

    def __or__(self, other: Any) -> Any:
        if (
            isinstance(other, _celery_group)
            and not isinstance(other.tasks, _regen)
            and isinstance(other.tasks, (list, tuple))
            and not other.tasks
        ):
            return self
        # group() | task -> chord, whose header stays a turbogroup group
        from turbogroup.chord import chord

        return chord(self, body=other, app=self._app)

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        add_to_parent: bool = True,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        *,
        on_progress: ProgressFn | None = None,
        progress: bool = False,
        **options: Any,
    ) -> Any:
        """Celery's ``apply_async``; ``on_progress(sent, total)`` (called as
        batches of messages are confirmed sent) and ``progress`` (a tqdm bar)
        are turbogroup's keyword-only additions."""
        args = args if args else ()
        if link is not None:
            raise TypeError("Cannot add link to group: use a chord")
        if link_error is not None:
            raise TypeError("Cannot add link to group: do that on individual tasks")
        app = unproxied(self.app)
        if setting(app.conf, "task_always_eager"):
            return self.apply(args, kwargs, **options)
        if not self.tasks:
            return self.freeze()

        options, group_id, root_id = self._freeze_gid(options)
        tasks = self._prepared(self.tasks, [], group_id, root_id, app)
        nested = isinstance(producer, DeferringProducer)  # sent with the outer group
        reporter = None
        if (progress or on_progress is not None) and not nested:
            reporter = DispatchProgress(progress, on_progress)
        try:
            call = GroupCall(group_id, root_id, args, kwargs, options)
            result = self._dispatch(tasks, app, producer, reporter, call)
            if reporter is not None and reporter.last is None:
                # Published one by one (no bulk publisher): all sent now.
                reporter(len(result), len(result))
        finally:
            if reporter is not None:
                reporter.close()

        parent_task = app.current_worker_task
        if add_to_parent and parent_task:
            parent_task.add_trail(result)
        return result

    def _dispatch(
        self,
        tasks: Any,
        app: Any,
        producer: Any,
        reporter: DispatchProgress | None,
        call: GroupCall,
    ) -> Any:
        p = barrier()
        # A generator group's size is unknown until dispatched (and _regen
        # is a list subclass whose len() would consume it): pause anyway.
        size = GC_PAUSE_THRESHOLD if isinstance(self.tasks, _regen) else len(self.tasks)
        result_cls = group_result_cls(app)
        with gc_paused(size), ExitStack() as stack:
            sending = open_sending(stack, app, producer, call.options)
            if sending.batch is not None and reporter is not None:
                sending.batch.on_sent = reporter
            lazy = self._apply_plain(app, sending, p, call)
            if lazy is None:
                results: Any = list(
                    self._apply_tasks(
                        tasks,
                        sending.producer,
                        app,
                        p,
                        args=call.args,
                        kwargs=call.kwargs,
                        **call.options,
                    )
                )
            elif issubclass(result_cls, BatchedCollection):
                results = lazy
            else:  # an app's own GroupResult class takes a list
                results = lazy.materialize()
        result = result_cls(call.group_id, results, ready_barrier=p)
        p.finalize()

        # group(A.s() | group(B.s(), C.s())): a single child whose result is
        # a GroupResult is returned as the group's result (as Celery does).
        if lazy is None and len(result) == 1 and isinstance(result[0], _CeleryGroupResult):
            result = result[0]
        return result

    def apply(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        args = args if args else ()
        kwargs = kwargs if kwargs else {}
        app = self.app
        if not self.tasks:
            return self.freeze()  # empty group returns GroupResult
        options, group_id, root_id = self._freeze_gid(options)
        # Celery 5.7.0 unrolls without freezing here: a frozen chain ending
        # in a group would subscribe to the backend, which eager never uses.
        tasks = self._prepared(self.tasks, [], group_id, root_id, app, freeze=False)
        return group_result_cls(app)(
            group_id,
            [sig.apply(args=args, kwargs=kwargs, **options) for sig, _, _ in tasks],
        )

    def _prepared(
        self,
        tasks: Any,
        partial_args: Any,
        group_id: str,
        root_id: str | None,
        app: Any,
        CallableSignature: Any = abstract.CallableSignature,  # noqa: N803 - Celery's
        from_dict: Any = Signature.from_dict,
        isinstance: Any = isinstance,  # noqa: A002 - Celery's signature
        tuple: Any = tuple,  # noqa: A002
        *,
        freeze: bool = True,
    ) -> Any:
        # Lazy like Celery's: _apply_tasks looks one task ahead so a
        # generator group is not consumed before the chord size is known.
        for index, task in enumerate(tasks):
            try:
                if isinstance(task, CallableSignature):
                    task = task.clone()
                else:
                    task = from_dict(task, app=app)
            except Exception as exc:
                # _apply_tasks names the child; only this knows its task.
                exc._turbogroup_task = _task_name(task)  # type: ignore[attr-defined]
                raise
            if isinstance(task, _celery_group):
                yield from task._prepared(
                    task.tasks, partial_args, group_id, root_id, app, freeze=freeze
                )
            elif isinstance(task, _chain) and not task.tasks:
                # An empty chain has no task and no result (celery #9772),
                # but still takes its index, as enumerate gives it one.
                continue
            else:
                if partial_args and not task.immutable:
                    task.args = tuple(partial_args) + tuple(task.args)
                result = (
                    freeze_leaf(task, group_id=group_id, root_id=root_id, group_index=index)
                    if freeze
                    else None
                )
                yield task, result, group_id

    def _apply_tasks(
        self,
        tasks: Any,
        producer: Any = None,
        app: Any = None,
        p: Any = None,
        add_to_parent: Any = None,
        chord: Any = None,
        args: Any = None,
        kwargs: Any = None,
        group_index: Any = None,
        **options: Any,
    ) -> Any:
        app = app or self.app
        with ExitStack() as stack:
            sending = open_sending(stack, app, producer, options)
            producer, batch, fast = sending.producer, sending.batch, sending.fast
            # Celery's loop from here: look one task ahead so the last one
            # knows it is last (chord size is set before its publish).
            chord_size = 0
            sent_at_once = False  # a chain child publishes on its own
            nothing_sent = batch is not None
            tasks_shifted, tasks = itertools.tee(tasks)
            for position in (0, 1):
                try:
                    next_task = next(tasks_shifted, None)
                except Exception as exc:
                    note_child(exc, position, None, nothing_sent=True)
                    raise
            position = 0
            for current_task in tasks:
                sig, res, group_id = current_task
                try:
                    chord_obj = chord if chord is not None else sig.options.get("chord")
                    chord_size += _chord._descend(sig)
                    if chord_obj is not None and next_task is None:
                        app.backend.set_chord_size(group_id, chord_size)
                    child = ChildCall(sig, chord_obj, args, kwargs, options)
                    call = into_batch(child, producer, app) if batch is not None else child
                    # Celery's own chain publishes on a pooled producer.
                    alone = call is not None and (
                        call.alone or (call.sig is sig and isinstance(sig, _chain))
                    )
                    sent_at_once = sent_at_once or alone
                    nothing_sent = batch is not None and not sent_at_once
                    if call is not None and call.alone:
                        call.publish(producer)
                    elif call is not None:
                        publish = child_publish(partial(call.publish, producer), batch)
                        if fast is None or not fast.add(
                            call.sig,
                            call.chord,
                            call.args,
                            call.kwargs,
                            call.options,
                            partial(_noting, publish, position, sig, nothing_sent),
                        ):
                            publish()
                    if batch is not None:
                        batch.published(res.id)
                except Exception as exc:
                    note_child(exc, position, _task_name(sig), nothing_sent)
                    raise
                if p and not p.cancelled and not p.ready:
                    p.size += 1
                    if sending.lazy_results:
                        # Fulfilled when the result is read (collection or
                        # a child's own get), with no SUBSCRIBE per task.
                        res.on_ready.then(p)
                    else:
                        res.then(p, weak=True)
                position += 1
                try:
                    next_task = next(tasks_shifted, None)
                except Exception as exc:
                    note_child(exc, position + 1, None, nothing_sent)
                    raise
                yield res

    def _apply_plain(
        self, app: Any, sending: Sending, p: Any, call: GroupCall
    ) -> LazyResults | None:
        """Dispatch through ``turbogroup.plain`` when every child is a plain
        task signature and the fast path is on; None when it does not apply.

        The results stay ids until touched. That defers attaching them to
        the ready barrier, which is the same only where attaching has no
        other effect: on Redis (no subscription, see _apply_tasks) or on a
        backend whose ``add_pending_result`` does nothing.
        """
        fast = sending.fast or amqp_fast_path(app, sending.batch)
        tasks = self.tasks
        if (
            fast is None
            or not fast.enabled
            or not plain_children(tasks, NESTED_GROUPS, _alike_chains(fast, call))
        ):
            return None
        lazy_results = sending.lazy_results
        backend = app.backend
        if not lazy_results and (
            type(backend).add_pending_result is not SyncBackendMixin.add_pending_result
        ):
            return None
        counted = p and not p.cancelled and not p.ready
        lazy = LazyResults.counted_by(p, lazy_results) if counted else LazyResults(None)
        sending = sending if sending.fast is fast else replace(sending, fast=fast)
        PlainDispatch(sending, call, lazy).run(self.tasks, NESTED_GROUPS)
        if counted:
            p.size += len(lazy)
        return lazy


def _alike_chains(fast: Any, call: GroupCall) -> bool:
    """Whether chain members may be built from their shape's template
    (``plain_chains``): on a fast path that fills in each one's chain."""
    return bool(
        fast.alike_chains
        and chains_allowed(call.args, call.kwargs, call.options)
        and celerys_chain_steps()
    )


# Groups that _prepared unrolls as Celery's does (a subclass may not).
NESTED_GROUPS = (_celery_group, group)

__all__ = ["adopt", "group"]

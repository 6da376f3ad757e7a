"""Dispatch of a group whose children are all plain task signatures.

The usual high-fanout group, ``group(add.s(i, i) for i in ...)``, is N
signatures of one task with the same options. Celery clones and freezes
each child, resolves its options on the way to the broker and makes its
``AsyncResult``: about 20 µs of Python per child before any byte is sent.

Here only the first child of each kind (task, options, immutability, the
signature's task and app objects) takes that path, through the transport's
fast path (``publish/redis.py``, ``publish/amqp_fast.py``), which reports
the message template it resolved (``last_alike``). The
rest are queued as an id, an index and their arguments, exactly what their
messages differ in, and their results are kept as ids until the group
result's ``results`` are first touched (``turbogroup.lazy.LazyResults``).

What Celery does per child that can be observed is still done per child:
the arguments go through the clone's ``tuple()`` and ``_merge``, the
``typing`` check runs with them, a bad child is named and nothing is sent.
The caller's signatures are not written to, as Celery's clone leaves them.
On the Redis fast path, a run of children of the kind of the last one
queued is queued by a loop in Rust (``_core.AlikeQueue``) that does the
same per child, so the usual fan-out runs no bytecode per child; it hands
back to the Python loop any child it does not take.
A child whose message the encoder cannot render is published by Celery's
own ``apply_async`` on a clone frozen with the same id and index.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from celery.canvas import Signature, _chain
from celery.utils.functional import _regen

from turbogroup._unroll import freeze_leaf, freeze_options, plain_freeze
from turbogroup.celery_guards import argument_check
from turbogroup.chains import ChildCall
from turbogroup.dispatch import GroupCall, Sending
from turbogroup.errors import note_child
from turbogroup.ids import uuid
from turbogroup.lazy import LazyResults, signature_result_maker
from turbogroup.plain_chains import ChainMembers
from turbogroup.plain_children import unrolled
from turbogroup.plain_kinds import ALIKE_QUEUE, NO_KWARGS, AlikeRun, Kind, kind_of, option_spec
from turbogroup.publish.alike import AlikeChild, new_tuple
from turbogroup.publish.batch import Batch
from turbogroup.publish.redis import RedisFastDispatch
from turbogroup.publish.resolve import child_clock
from turbogroup.publish.signals import child_publish, publish_receivers

_get: Callable[[dict[str, Any], str], Any] = dict.get

# Options group._apply_tasks takes as parameters of its own: not passed on.
_APPLY_TASKS_OWN = frozenset({"chord", "group_index"})


class PlainDispatch:
    """One dispatch of plain children into ``fast`` (see the module
    docstring); ``results`` holds what ``apply_async`` returns, lazily."""

    def __init__(self, sending: Sending, call: GroupCall, results: LazyResults) -> None:
        self.fast = sending.fast  # RedisFastDispatch or AmqpFastDispatch
        self.batch = sending.batch
        self.producer = sending.producer
        self.group_id = call.group_id
        self.root_id = call.root_id
        self.args = call.args
        self.kwargs = call.kwargs
        # group._apply_tasks takes the group's chord option (a chord
        # header's) as a parameter of its own: every child's chord, ahead
        # of the child's, and not among the options passed on.
        options = call.options
        self.chord = options.get("chord")
        # and its group_index (a group applied from its dict by a worker
        # may have one): never its children's
        self.options = (
            {k: v for k, v in options.items() if k not in _APPLY_TASKS_OWN}
            if not _APPLY_TASKS_OWN.isdisjoint(options)
            else options
        )
        self.results = results
        # kind -> what its children's messages are built from, or None
        # when that kind's messages are not alike (each goes the whole way)
        self._kinds: dict[tuple[Any, ...], Kind | None] = {}
        self._fallback = self._celery_publish  # one bound method for every child
        # A chain member another app publishes (``ChildCall.alone``) leaves
        # at once, as on Celery's path; nothing else leaves before the flush.
        self.sent_at_once = False
        self._chains = ChainMembers(self)
        # Celery's message has a copy of the signature's kwargs (clone),
        # made when it publishes the child; ours are sent later (all or
        # nothing), so they are copied too. Empty ones, the usual fan-out's,
        # all share one empty dict nothing writes to (a million copies
        # held until sent cost 64 MiB), unless publish signal receivers,
        # which may write to a message's kwargs, see them.
        # The same where a tracer's wrappers, which may write to them, see
        # them; those then check each child's arguments themselves, inside
        # the wrappers, where Celery's apply_async checks them.
        self._wrapped = getattr(self.fast, "wrapped", None) is not None
        self._copy_kwargs = publish_receivers() or self._wrapped
        # The Rust loop, for the Redis fast path's own batches, with the
        # group's partial arguments merged as Signature._merge merges them
        # (a list or tuple, and a dict of str keys; anything else stays
        # with the Python loop, which raises what Celery raises).
        self._quick = (
            isinstance(self.fast, RedisFastDispatch)
            and type(self.batch) is Batch
            and (not self.args or type(self.args) in (list, tuple))
            and (
                not self.kwargs
                or (type(self.kwargs) is dict and all(type(k) is str for k in self.kwargs))
            )
        )
        self._partial_args = tuple(self.args) if self._quick and self.args else ()
        self._partial_kwargs = self.kwargs if self._quick and self.kwargs else {}
        self._last_kind: tuple[Any, ...] | None = None
        self._last_options: dict[str, Any] = {}
        self._backoff = self._wait = 0

    def run(self, tasks: Any, nested: tuple[type, ...] = ()) -> None:
        """Dispatch ``tasks`` (plain children, or groups of ``nested`` types
        of them: ``plain_children``). ``position`` counts the children in
        dispatch order, nested groups unrolled; ``index`` is a child's
        group index, its position in its own group."""
        if self._quick and type(tasks) is _regen:
            # plain_children read it to the end: its children, as a list
            tasks = tasks.data
        if self._quick and (type(tasks) is list or type(tasks) is tuple):
            count, task = self._run_sequence(tasks, nested)
        else:
            count, task = self._run_children(
                unrolled(tasks, nested) if nested else enumerate(tasks)
            )
        # group._apply_tasks reads each child's chord, but only the last
        # child's decides.
        chord = self._chord_of(task) if count else None
        if chord is not None:
            # group._apply_tasks sets it before the last child's publish
            # (the last child's chord decides); nothing is sent before the
            # batch is flushed, after this.
            self.fast.app.backend.set_chord_size(self.group_id, count)

    def _run_children(self, children: Any, start: int = 0) -> tuple[int, Any]:
        """Each ``(index, task)`` of ``children``, from position ``start``;
        returns the position after the last, and the last task."""
        position, task = start, None
        for index, task in children:
            self._one(task, position, index)
            position += 1
        return position, task

    def _run_sequence(self, tasks: Any, nested: tuple[type, ...]) -> tuple[int, Any]:
        """``run`` over a list or tuple: after each child the Python loop
        sends, the children alike it that follow go through the Rust loop
        (``_core.AlikeQueue``) until one is not, or a step is due."""
        position = i = 0
        last = None  # the last child sent (an empty nested group sends none)
        while i < len(tasks):
            task = tasks[i]
            i += 1
            if type(task) in nested:
                position, sent = self._run_children(unrolled((task,), nested), position)
                last = sent if sent is not None else last
                continue
            self._one(task, position, i - 1)
            position += 1
            last = task
            if position == i:  # each child's index is its position
                done = self._queue_alike(tasks, i)
                if done > i:
                    position += done - i
                    i = done
                    last = tasks[i - 1]
        return position, last

    def _queue_alike(self, tasks: Any, start: int) -> int:
        """The children from ``start`` alike the last one the Python loop
        queued, queued by the Rust loop (and then published one by one,
        between the publish signals or inside a tracer's wrappers, when
        those run); returns where it stopped. After a
        run that queued nothing (children of changing kinds), the next
        tries wait for ever more children (up to 64) in the Python loop."""
        if self._wait:
            self._wait -= 1
            return start
        kind = self._last_kind
        known = self._kinds.get(kind) if kind is not None else None
        fast = self.fast
        if kind is None or known is None or known.clock is not None:
            return start  # (the Rust loop reads no clock)
        name, immutable, sig_type, app = kind[:4]
        qname, template, typed, make, _ = known
        # One by one, the loop's children are handed to the signals or the
        # wrappers afterwards, in order (they number them as they queue).
        one_by_one = fast.one_by_one
        pending = [] if one_by_one else fast.pending
        run = AlikeRun(
            name,
            immutable,
            sig_type,
            app,
            option_spec(self._last_options),
            qname,
            template,
            None if self._wrapped else typed,
            self._partial_args,
            self._partial_kwargs,
            pending,
            int if one_by_one else fast.sequence,  # int() is 0: renumbered
            self._fallback,
            self._copy_kwargs,
        )
        stop = start + self.batch.until_seal()
        done: int = ALIKE_QUEUE.run(tasks, start, stop, run, self.results.column_for(make))
        if one_by_one:
            add = fast.add_alike
            for _, _, child, _, _ in pending:
                add(qname, child)
        self.batch.published_many(done - start)
        self.batch.report.looped += done - start
        self._backoff = 0 if done > start else min(2 * self._backoff + 1, 64)
        self._wait = self._backoff
        return done

    def _one(self, task: Any, position: int, index: int) -> None:
        """One child by the Python loop."""
        self._last_kind = None
        try:
            if type(task) is _chain:
                self._chains.add(task, position, index)
            else:
                kind = kind_of(task)
                known = self._kinds.get(kind)
                if known is None:
                    self._whole_way(task, position, index, kind, kind not in self._kinds)
                else:
                    self._alike(task, position, index, known)
                self._last_kind = kind  # the Rust loop's next run's
                self._last_options = _get(task, "options")
        except Exception as exc:
            note_child(exc, position, _get(task, "task"), not self.sent_at_once)
            raise

    def _alike(self, task: Signature, position: int, index: int, known: Kind) -> None:
        qname, template, typed, make, clock = known
        args = tuple(_get(task, "args"))  # Signature.clone
        kwargs = _get(task, "kwargs")
        if kwargs or self._copy_kwargs or type(kwargs) is not dict:
            kwargs = dict(kwargs)  # Signature.clone's (of a list of pairs too)
        else:
            kwargs = NO_KWARGS
        if not _get(task, "immutable"):  # Signature._merge
            if self.args:
                args = tuple(self.args) + args
            if self.kwargs:
                kwargs = dict(kwargs, **self.kwargs)
        if typed is not None and not self._wrapped:  # Task.apply_async's typing check
            typed(*args, **kwargs)
        options = _get(task, "options")
        task_id = _get(options, "task_id") or uuid()
        own_clock = None
        if clock is not None:
            own_clock = child_clock(self.fast.resolver.clock, clock, template)
        if clock is not None and own_clock is None:
            # e.g. an expiry in the past: Celery's publish
            self._nested_publish(position, task, index, task_id)
        else:
            # Named by its position if Celery's publish fails (at the seal);
            # only a nested group's children need their own callable for it.
            fallback = (
                self._fallback if index == position else partial(self._nested_publish, position)
            )
            # a chain option set on the child is its own (not the template's)
            chain = _get(options, "chain")
            no_headers = None  # of its own: receivers or wrappers add them later
            fields = (task_id, index, args, kwargs, chain, own_clock, template, task, fallback,
                      no_headers)  # fmt: skip
            self.fast.add_alike(qname, new_tuple(AlikeChild, fields))
        self.results.add_id(task_id, make)
        self.batch.published(task_id)

    def _whole_way(
        self, task: Signature, position: int, index: int, kind: Any, learn: bool
    ) -> None:
        """Celery's steps for one child (clone, freeze, apply_async), into
        the fast path when it can build the message; when ``learn``, what
        the fast path resolved becomes the template of the child's kind."""
        clone = task.clone()
        freezing = {"group_id": self.group_id, "root_id": self.root_id, "group_index": index}
        if plain_freeze(clone):
            # Signature.freeze's writes; the result it would return is made
            # when touched, as every alike child's is (LazyResults)
            task_id = freeze_options(clone, chord=None, parent_id=None, **freezing)
        else:
            task_id = freeze_leaf(clone, **freezing).id
        publish = partial(self._publish, clone, position)
        chord = self._chord_of(clone)
        if not self.fast.add(clone, chord, self.args, self.kwargs, self.options, publish):
            publish()
        make = signature_result_maker(clone)
        if learn:
            alike = self.fast.last_alike
            if alike is not None:
                typed = argument_check(self.fast.app.tasks[clone.task])
                qname, template = alike
                self._kinds[kind] = Kind(qname, template, typed, make, self.fast.last_clock)
            else:
                self._kinds[kind] = None
        # Kept as its id: made when touched, as freeze would have made it.
        self.results.add_id(task_id, make)
        self.batch.published(task_id)

    def _publish(self, clone: Signature, position: int) -> None:
        """Celery's publish of a frozen clone (called later, when sealing,
        for a message the encoder could not render: it names its child)."""
        call = ChildCall(clone, self._chord_of(clone), self.args, self.kwargs, self.options)
        self.publish_call(call, position, clone.task)

    def publish_call(self, call: ChildCall, position: int, name: str) -> None:
        """Celery's publish of a child as ``group._apply_tasks`` makes it (a
        chain's: its first task's, ``chains.into_batch``), into the batch;
        it names its child if it raises."""
        self.sent_at_once = self.sent_at_once or call.alone
        try:
            if call.alone:
                call.publish(None)
            else:
                child_publish(partial(call.publish, self.producer), self.batch)()
        except Exception as exc:
            note_child(exc, position, name, not self.sent_at_once)
            raise

    def _chord_of(self, task: Signature) -> Any:
        return self.chord if self.chord is not None else _get(_get(task, "options"), "chord")

    def _celery_publish(self, task: Signature, index: int | None, task_id: str) -> None:
        assert index is not None  # a plain child's
        self._nested_publish(index, task, index, task_id)

    def _nested_publish(self, position: int, task: Signature, index: int, task_id: str) -> None:
        clone = task.clone()
        clone.freeze(_id=task_id, group_id=self.group_id, root_id=self.root_id, group_index=index)
        self._publish(clone, position)

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
A child whose message the encoder cannot render is published by Celery's
own ``apply_async`` on a clone frozen with the same id and index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from celery.canvas import Signature, _chain
from celery.utils.functional import _regen

from turbogroup._unroll import freeze_leaf, freeze_options, plain_freeze
from turbogroup.celery_guards import argument_check
from turbogroup.chains import ChildCall
from turbogroup.dispatch import GroupCall, Sending
from turbogroup.errors import note_child
from turbogroup.freezing import LazilyFrozen
from turbogroup.ids import uuid
from turbogroup.lazy import LazyResults, signature_result_maker
from turbogroup.plain_chains import ChainMembers, plain_chain
from turbogroup.publish.alike import ATOMIC, AlikeChild, atomic_key, new_tuple
from turbogroup.publish.signals import child_publish, publish_receivers

_get: Callable[[dict[str, Any], str], Any] = dict.get
# Options group._apply_tasks takes as parameters of its own: not passed on.
_APPLY_TASKS_OWN = frozenset({"chord", "group_index"})


def plain_children(tasks: Any, nested: tuple[type, ...] = (), chains: bool = False) -> bool:
    """Whether every child is a plain task signature: one Celery would
    freeze with a new id and no chord, or one frozen already (a chord
    header's child, a frozen group's), which keeps its id and chord. A
    child that is a group of a type in ``nested`` is plain when its own
    children are (see ``unrolled``); with ``chains``, a chain that
    ``plain_chains`` builds is too.

    The children of a generator group that was frozen (a chord header's,
    ``LazilyFrozen``) are frozen only as its results are read, which
    chord.run never does: each is plain as a generator group's child is,
    or as a frozen one if its result was read (by ``save()`` say).

    A generator group (``_regen``) is read to the end to know: it keeps
    what it yielded, so the dispatch reads the same children again. If the
    generator raises, the child it failed to produce is named and nothing
    is sent, as on Celery's path (``group._apply_tasks``).
    """
    if type(tasks) is list or type(tasks) is tuple:
        if all(map(_plain, tasks)):
            return True
        return bool(nested or chains) and all(_plain_child(t, nested, chains) for t in tasks)
    if type(tasks) is not _regen and type(tasks) is not LazilyFrozen:
        return False
    children = iter(tasks)
    position = 0
    while True:
        try:
            task = next(children)
        except StopIteration:
            return True
        except Exception as exc:
            note_child(exc, position, None, nothing_sent=True)
            raise
        if not _plain_child(task, nested, chains):
            return False
        position += 1


def _plain_child(task: Any, nested: tuple[type, ...], chains: bool) -> bool:
    return _plain(task) or (chains and plain_chain(task)) or _plain_group(task, nested, chains)


def _plain_group(task: Any, nested: tuple[type, ...], chains: bool) -> bool:
    """A nested group that ``group._prepared`` unrolls into plain children
    exactly as ``unrolled`` does: it clones the group first (which deep
    copies its options and gives each child the group's app, if it has
    one), so those must change nothing."""
    if type(task) not in nested:
        return False
    options = _get(task, "options")
    if type(options) is not dict or any(type(v) not in ATOMIC for v in options.values()):
        return False
    children = task.tasks
    if not plain_children(children, nested, chains):
        return False
    app = task._app
    return app is None or all(child._app is app for child in children)


def unrolled(tasks: Any, nested: tuple[type, ...]) -> Iterator[tuple[int, Any]]:
    """``(group_index, task)`` for each task ``group._prepared`` sends, in
    its order: a nested group's children in its place, each indexed
    within its own group (Celery's ``enumerate`` at each level)."""
    for index, task in enumerate(tasks):
        if type(task) in nested:
            yield from unrolled(task.tasks, nested)
        else:
            yield index, task


def _plain(task: Any) -> bool:
    if type(task) is not Signature or _get(task, "subtask_type") is not None:
        return False
    options = _get(task, "options")
    return type(options) is dict and ("chord" not in options or "task_id" in options)


# The kwargs of every alike child without any, read by the encoder only.
_NO_KWARGS: dict[str, Any] = {}

# What a frozen child's message takes from its own options, not its kind's.
_PER_CHILD = frozenset({"task_id", "group_index"})


def _kind(task: Signature) -> tuple[Any, ...]:
    options = _get(task, "options")
    key = (_get(task, "task"), bool(_get(task, "immutable")), task._type, task._app)
    if not options:
        return key
    return key + tuple(
        (k, atomic_key(v) if type(v) in ATOMIC else id(v))
        if k not in _PER_CHILD
        else (k,)  # frozen: its id is its own, but not every child has one
        for k, v in options.items()
    )


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
        # kind -> (queue, template, Task, Task.AsyncResult), or None when
        # that kind's messages are not alike (each goes the whole way)
        self._kinds: dict[tuple[Any, ...], tuple[str, dict[str, Any], Any, Any] | None] = {}
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
        self._copy_kwargs = publish_receivers()

    def run(self, tasks: Any, nested: tuple[type, ...] = ()) -> None:
        """Dispatch ``tasks`` (plain children, or groups of ``nested`` types
        of them: ``plain_children``). ``position`` counts the children in
        dispatch order, nested groups unrolled; ``index`` is a child's
        group index, its position in its own group."""
        kinds = self._kinds
        count = 0
        task = None
        children = unrolled(tasks, nested) if nested else enumerate(tasks)
        for position, (index, task) in enumerate(children):
            try:
                if type(task) is _chain:
                    self._chains.add(task, position, index)
                else:
                    kind = _kind(task)
                    known = kinds.get(kind)
                    if known is None:
                        self._whole_way(task, position, index, kind, kind not in kinds)
                    else:
                        self._alike(task, position, index, known)
            except Exception as exc:
                note_child(exc, position, _get(task, "task"), not self.sent_at_once)
                raise
            count += 1
        # group._apply_tasks reads each child's chord, but only the last
        # child's decides.
        chord = self._chord_of(task) if count else None
        if chord is not None:
            # group._apply_tasks sets it before the last child's publish
            # (the last child's chord decides); nothing is sent before the
            # batch is flushed, after this.
            self.fast.app.backend.set_chord_size(self.group_id, count)

    def _alike(self, task: Signature, position: int, index: int, known: tuple) -> None:
        qname, template, typed, make = known
        args = tuple(_get(task, "args"))  # Signature.clone
        kwargs = _get(task, "kwargs")
        if kwargs or self._copy_kwargs or type(kwargs) is not dict:
            kwargs = dict(kwargs)  # Signature.clone's (of a list of pairs too)
        else:
            kwargs = _NO_KWARGS
        if not _get(task, "immutable"):  # Signature._merge
            if self.args:
                args = tuple(self.args) + args
            if self.kwargs:
                kwargs = dict(kwargs, **self.kwargs)
        if typed is not None:  # Task.apply_async's typing check
            typed(*args, **kwargs)
        options = _get(task, "options")
        task_id = _get(options, "task_id") or uuid()
        # Named by its position if Celery's publish fails (at the seal);
        # only a nested group's children need their own callable for it.
        fallback = self._fallback if index == position else partial(self._nested_publish, position)
        # a chain option set on the child is its own (not the template's)
        fields = (task_id, index, args, kwargs, _get(options, "chain"), template, task, fallback)
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
                self._kinds[kind] = (*alike, typed, make)
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

"""Chains as children of a plain dispatch: a group of per-item pipelines,
``group(chain(a.s(i), b.s(), c.s()) for i in ...)``.

For each chain member Celery clones the chain, freezes it (an id and a
result per step, the last step carrying the group's id and index) and
starts it: its first task's message carries the rest of the chain, last
step first, in its ``chain`` field. Chains of one shape (the same tasks
in the same order, nothing set on them, the same chain options) differ
only in their ids and arguments. So the first chain of a shape takes
Celery's steps (clone,
freeze, start, into the batch through the fast path), and its message and
the steps in its ``chain`` field become the shape's template; every
other chain of the shape gets new ids and its own arguments written into
copies of those steps, its first message alike the template's. Its
result is made when touched, as Celery's freeze would have made it: the
last step's result, each step's result the next one's ``parent``.

Only where nothing else could differ: chains of Celery's own class with
Celery's own cloning, freezing and starting, of at least two plain task
signatures, and a group call whose partial arguments and options are
the same for every chain (``chains_allowed``). The chain and each of its steps
may have options (``.set(queue=..., priority=...)``) with atomic values,
none of them an id, a place or a callback: they are part of the shape, so
every chain of a shape has the same ones (the first step's reach its
message, the others' the chain field, as Celery writes them). Clock
options (countdown, eta, expires) give each chain's first message its
own times, read from the clock as Celery reads them. A template whose
``chain`` field is not what these rules give is not used.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import celery.canvas
from celery.canvas import Signature, _chain

from turbogroup._unroll import freeze_leaf, freezes_as_signature
from turbogroup.celery_guards import argument_check, chain_start_is_celerys, defined_by
from turbogroup.chains import ChildCall, into_batch
from turbogroup.ids import uuid
from turbogroup.lazy import signature_result_maker
from turbogroup.publish.alike import ATOMIC, AlikeChild, atomic_key
from turbogroup.publish.resolve import Clock, child_clock

# Celery's methods the template stands in for, by class.
_CELERYS = ((_chain, ("clone", "freeze", "prepare_steps")), (Signature, ("clone", "freeze")))
# What a frozen step's options may hold (Signature.freeze's writes).
_FROZEN_OPTIONS = frozenset({"task_id", "root_id", "reply_to", "group_id", "group_index"})


def celerys_chain_steps() -> bool:
    """Whether cloning, freezing and starting a chain are Celery's own code."""
    return all(
        defined_by(getattr(cls, name, None), celery.canvas, name)
        for cls, names in _CELERYS
        for name in names
    ) and chain_start_is_celerys(_chain)


def chains_allowed(args: Any, kwargs: Any, options: dict[str, Any]) -> bool:
    """Whether a group call leaves its chain members alike: partial
    arguments in a list or tuple and a dict of str keys (each chain's first
    step takes them as ``_chain.run`` gives them), and options that are
    the group's and root ids or the same for every chain (atomic, none of
    a chain's own)."""
    return (
        (not args or type(args) in (list, tuple))
        and (not kwargs or (type(kwargs) is dict and all(type(k) is str for k in kwargs)))
        and _shared_options({k: v for k, v in options.items() if k not in _GROUP_IDS})
    )


_GROUP_IDS = frozenset({"group_id", "root_id"})


# Chain options the template cannot carry: ids and places (each chain's
# own), callbacks and chords (not atomic, or changing the chain field),
# and what makes a signature of the options dict (``_chain.from_dict``
# passes them to the clone: an immutable clone drops the partial args).
# Clock options are carried: the first message's clock fields are each
# chain's own (AlikeChild.clock), the later steps' options only data.
_NOT_SHARED_OPTIONS = frozenset(
    {
        "task_id", "group_id", "root_id", "parent_id", "group_index", "chord", "link",
        "link_error", "chain", "immutable", "subtask_type",
    }
)  # fmt: skip


def _shared_options(options: Any) -> bool:
    """Options every chain of a shape starts its first task with alike
    (``_chain.run`` passes them to it): atomic values, none of a chain's
    own."""
    return type(options) is dict and all(
        type(v) in ATOMIC and k not in _NOT_SHARED_OPTIONS for k, v in options.items()
    )


def plain_chain(task: Any) -> bool:
    """A chain that the shape's template builds exactly (module docstring)."""
    if (
        type(task) is not _chain
        or not _shared_options(task.options)
        or task.args
        or task.kwargs.keys() != {"tasks"}
    ):
        return False
    steps = task.tasks
    return len(steps) >= 2 and all(
        type(step) is Signature
        and step.subtask_type is None
        and type(step.immutable) is bool  # copied from the template as it is
        and _shared_options(step.options)
        and freezes_as_signature(step)
        for step in steps
    )


def chain_kind(task: _chain) -> tuple[Any, ...]:
    return (
        _chain,
        task._app,
        tuple(
            (step.task, bool(step.immutable), step._type, step._app, _options_key(step.options))
            for step in task.tasks
        ),
        _options_key(task.options),
    )


def _options_key(options: dict[str, Any]) -> tuple[Any, ...]:
    # atomic values (plain_chain), in their order: equal when written alike
    return tuple((k, atomic_key(v)) for k, v in options.items())


class ChainResults:
    """Makes a chain member's result from its last step's id: each step's
    result as its task's ``AsyncResult``, each the next one's ``parent``
    (``_chain.prepare_steps``). One for every chain of a shape."""

    def __init__(self, makers: list[Any]) -> None:
        self.makers = makers
        self.earlier: dict[str, tuple[str, ...]] = {}  # last id -> the other steps' ids
        # LazyResults reads the backend the results will have from here.
        self.keywords = getattr(makers[-1], "keywords", {})

    def add(self, ids: list[str]) -> str:
        self.earlier[ids[-1]] = tuple(ids[:-1])
        return ids[-1]

    def __call__(self, last_id: str) -> Any:
        result = None
        for make, task_id in zip(self.makers, (*self.earlier[last_id], last_id)):
            previous, result = result, make(task_id)
            if previous is not None:
                result.parent = previous
        return result


class ChainShape(NamedTuple):
    """What the first chain of a shape taught: its first message's queue
    and template, its other steps as sent (last first), the first task's
    typing check, the results' maker, and what the first message reads the
    clock for (None: nothing)."""

    qname: str
    template: dict[str, Any]
    rest: list[Signature]
    typed: Any
    results: ChainResults
    clock: Clock | None


class ChainMembers:
    """The chain members of one plain dispatch (``plain.PlainDispatch``)."""

    def __init__(self, dispatch: Any) -> None:
        self.dispatch = dispatch
        self.shapes: dict[tuple[Any, ...], ChainShape | None] = {}

    def add(self, task: _chain, position: int, index: int) -> None:
        kind = chain_kind(task)
        shape = self.shapes.get(kind)
        if shape is None:
            self._whole_way(task, position, index, kind, kind not in self.shapes)
        else:
            self._alike(task, position, index, shape)

    def _start(self, task: _chain, index: int, ids: list[str] | None = None) -> Any:
        """``group._prepared``'s clone and freeze of one chain, and
        ``_apply_tasks``'s start of it up to its first task's publish
        (``chains.into_batch``); with ``ids``, its steps keep these ids."""
        d = self.dispatch
        clone = task.clone()
        if ids is not None:
            for step, task_id in zip(clone.tasks, ids):
                step.options["task_id"] = task_id  # kept by Signature.freeze
        result = freeze_leaf(clone, group_id=d.group_id, root_id=d.root_id, group_index=index)
        call = into_batch(
            ChildCall(clone, None, d.args, d.kwargs, d.options), d.producer, d.fast.app
        )
        assert call is not None  # a plain chain has tasks
        return clone, call, [r.id for r in reversed(list(_results(result)))]

    def _whole_way(self, task: _chain, position: int, index: int, kind: Any, learn: bool) -> None:
        """Celery's steps for one chain, into the fast path when it can build
        the first task's message; when ``learn``, the shape's template."""
        d = self.dispatch
        clone, call, ids = self._start(task, index)
        publish = partial(d.publish_call, call, position, task.task)
        built = not call.alone and d.fast.add(
            call.sig, call.chord, call.args, call.kwargs, call.options, publish
        )
        if not built:
            publish()
        shape = self._learn(task, clone, call, index, ids) if built and learn else None
        if learn:
            self.shapes[kind] = shape
        results = shape.results if shape is not None else ChainResults(_makers(clone))
        d.results.add_id(results.add(ids), results)
        d.batch.published(ids[-1])

    def _learn(
        self, task: _chain, clone: _chain, call: ChildCall, index: int, ids: list[str]
    ) -> Any:
        fast = self.dispatch.fast
        alike, rest = fast.last_alike, call.options.get("chain", ())
        if alike is None or not _frozen_as_expected(rest, task, ids, index):
            return None
        typed = argument_check(fast.app.tasks[call.sig.task])
        qname, template = alike
        results = ChainResults(_makers(clone))
        return ChainShape(qname, template, list(rest), typed, results, fast.last_clock)

    def _alike(self, task: _chain, position: int, index: int, shape: ChainShape) -> None:
        d = self.dispatch
        steps = task.tasks
        args, kwargs = _first_step_arguments(task, d.args, d.kwargs)
        if shape.typed is not None:  # the first task's Task.apply_async
            shape.typed(*args, **kwargs)
        ids = [uuid() for _ in steps]
        clock = None
        if shape.clock is not None:  # the first task's send_task
            clock = child_clock(d.fast.resolver.clock, shape.clock, shape.template)
            if clock is None:  # an expiry in the past: Celery's path
                self._through_celery(position, index, ids, task)
                d.results.add_id(shape.results.add(ids), shape.results)
                d.batch.published(ids[-1])
                return
        # The chain field: the last step first, each a copy of the
        # template's step with this chain's id and arguments.
        rest = []
        for step, template, task_id in zip(reversed(steps), shape.rest, reversed(ids)):
            options = dict(template["options"], task_id=task_id)
            if "group_index" in options:
                options["group_index"] = index
            rest.append(
                dict(template, args=tuple(step.args), kwargs=dict(step.kwargs), options=options)
            )
        fallback = partial(self._through_celery, position, index, ids)
        child = AlikeChild(ids[0], None, args, kwargs, rest, clock, shape.template, task, fallback)
        d.fast.add_alike(shape.qname, child)
        d.results.add_id(shape.results.add(ids), shape.results)
        d.batch.published(ids[-1])

    def _through_celery(
        self, position: int, index: int, ids: list[str], task: Any, *_: Any
    ) -> None:
        """A chain whose message the encoder cannot render: Celery's steps,
        with the ids it was given (called when its step is sealed)."""
        _, call, _ = self._start(task, index, ids)
        self.dispatch.publish_call(call, position, task.task)


def _first_step_arguments(task: _chain, args: Any, kwargs: Any) -> tuple[tuple, dict]:
    """The first step's arguments as Celery starts a chain member with the
    group's partial ``args`` and ``kwargs``: ``prepare_steps`` clones the
    first step with them (``Signature.clone``, merged unless it is
    immutable). ``_chain.run`` would drop the args of an immutable chain,
    but the group's clone of a chain is never immutable (``_chain.from_dict``
    drops the flag)."""
    first = task.tasks[0]
    if first.immutable or not (args or kwargs):
        return tuple(first.args), dict(first.kwargs)
    merged_args = tuple(args) + tuple(first.args) if args else tuple(first.args)
    return merged_args, dict(first.kwargs, **kwargs) if kwargs else dict(first.kwargs)


def _results(result: Any) -> Any:
    while result is not None:
        yield result
        result = result.parent


def _makers(clone: _chain) -> list[Any]:
    return [signature_result_maker(step) for step in clone.tasks]


def _frozen_as_expected(rest: Any, chain: _chain, ids: list[str], index: int) -> bool:
    """Whether the chain field sent is the chain's other steps, last first,
    frozen as the template assumes: plain signatures with their own options
    and only ``Signature.freeze``'s besides, the last one's group index
    ``index``."""
    if type(rest) is not list or len(rest) != len(ids) - 1:
        return False
    for step, own, task_id in zip(rest, reversed(chain.tasks), reversed(ids)):
        if type(step) is not Signature:
            return False
        options = step.options
        if not options.keys() <= _FROZEN_OPTIONS | own.options.keys():
            return False
        if any(
            k not in options or atomic_key(options[k]) != atomic_key(v)
            for k, v in own.options.items()
        ):
            return False
        if options["task_id"] != task_id:
            return False
    last = rest[0].options
    return last.get("group_index") == index and all(
        "group_index" not in step.options for step in rest[1:]
    )


__all__ = ["ChainMembers", "celerys_chain_steps", "chains_allowed", "plain_chain"]

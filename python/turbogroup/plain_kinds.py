"""The kinds of a plain dispatch's children (``plain.py``): which children
share a message template, and what the Rust loop (``_core.AlikeQueue``)
reads to queue a run of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from celery.canvas import Signature

from turbogroup._core import AlikeQueue
from turbogroup.publish.alike import ATOMIC, AlikeChild, atomic_key
from turbogroup.publish.resolve import Clock

_get: Callable[[dict[str, Any], str], Any] = dict.get


class Kind(NamedTuple):
    """What the first child of a kind taught: its message's queue and
    template, the task's typing check, the results' maker, and what its
    children read the clock for (None: nothing, the template's clock
    fields are every child's)."""

    qname: str
    template: dict[str, Any]
    typed: Any
    make: Any
    clock: Clock | None


class AlikeRun(NamedTuple):
    """What ``_core.AlikeQueue`` reads for one run: the kind (``kind_of``,
    with each option as ``(key, how, value)``), its ``_kinds`` entry but
    the result maker, the group's partial arguments, and where its
    children go."""

    name: Any
    immutable: bool
    sig_type: Any
    app: Any
    options: tuple[tuple[str, int, Any], ...]
    qname: str
    template: Any
    typed: Any
    partial_args: tuple[Any, ...]
    partial_kwargs: dict[str, Any]
    pending: list[Any]  # the fast path's (sealing a step replaces it)
    sequence: Callable[[], int]
    fallback: Callable[..., Any]
    copy_kwargs: bool


# How AlikeQueue compares a child's option with its kind's: any value (the
# child's own), a value written alike (atomic_key), or the very object.
_PER_CHILD_VALUE, _ATOMIC_VALUE, _SAME_OBJECT = 0, 1, 2


def option_spec(options: dict[str, Any]) -> tuple[tuple[str, int, Any], ...]:
    """``kind_of``'s options part, as ``AlikeQueue`` reads it."""
    return tuple((k, _how_compared(k, v), v) for k, v in options.items())


def _how_compared(key: str, value: Any) -> int:
    if key in _PER_CHILD:
        return _PER_CHILD_VALUE
    return _ATOMIC_VALUE if type(value) in ATOMIC else _SAME_OBJECT


# The kwargs of every alike child without any, read by the encoder only.
NO_KWARGS: dict[str, Any] = {}

# The Rust loop's constants (``PlainDispatch._queue_alike``).
ALIKE_QUEUE = AlikeQueue(Signature, AlikeChild, tuple.__new__, NO_KWARGS)

# What a frozen child's message takes from its own options, not its kind's.
_PER_CHILD = frozenset({"task_id", "group_index"})


def kind_of(task: Signature) -> tuple[Any, ...]:
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


__all__ = ["ALIKE_QUEUE", "NO_KWARGS", "AlikeRun", "Kind", "kind_of", "option_spec"]

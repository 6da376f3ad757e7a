"""Which children a group sends through ``turbogroup.plain``: plain task
signatures (or nested groups and chains of them), and the order and group
indexes in which ``group._prepared`` would send them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from celery.canvas import Signature
from celery.utils.functional import _regen

from turbogroup.errors import note_child
from turbogroup.freezing import LazilyFrozen
from turbogroup.plain_chains import plain_chain
from turbogroup.publish.alike import ATOMIC

_get: Callable[[dict[str, Any], str], Any] = dict.get


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

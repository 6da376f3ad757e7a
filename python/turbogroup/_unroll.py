"""Flattening and freezing a group's children, with the plan made in Rust.

Celery 5.7.0's ``group._freeze_unroll`` flattens nested groups through a
deque; ``_core.freeze_unroll_order`` reproduces its order from the group's
shape, including the ``extendleft`` reversal of a nested group's children.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery.canvas import Signature, _chain, maybe_signature
from celery.canvas import group as _celery_group

from turbogroup import _core
from turbogroup.ids import uuid
from turbogroup.lazy import LazyResults, signature_result_maker

_SIGNATURE_FREEZE = Signature.freeze


def freezes_as_signature(task: Any) -> bool:
    """Whether ``task.freeze`` is ``Signature.freeze`` itself (not a
    chain's, a chord's, or a task's own)."""
    return type(task).freeze is _SIGNATURE_FREEZE and "freeze" not in task.__dict__


def plain_freeze(task: Any) -> bool:
    """Whether ``task`` is a plain signature frozen by ``Signature.freeze``."""
    return type(task) is Signature and freezes_as_signature(task)


def freeze_options(task: Signature, **kwargs: Any) -> str:
    """What ``Signature.freeze(_id=..., **kwargs)`` writes into the task's
    options, without making the result it returns; the task id."""
    opts = task.options
    try:
        tid = opts["task_id"]
    except KeyError:
        tid = opts["task_id"] = uuid()
    if kwargs["root_id"]:
        opts["root_id"] = kwargs["root_id"]
    if kwargs["parent_id"]:
        opts["parent_id"] = kwargs["parent_id"]
    if "reply_to" not in opts:
        opts["reply_to"] = task.app.thread_oid
    if kwargs["group_id"] and "group_id" not in opts:
        opts["group_id"] = kwargs["group_id"]
    if kwargs["chord"]:
        opts["chord"] = kwargs["chord"]
    if kwargs["group_index"] is not None:
        opts["group_index"] = kwargs["group_index"]
    return tid


def freeze_leaf(task: Signature, **kwargs: Any) -> Any:
    """``task.freeze(**kwargs)``, with the task id from our Rust pool when
    the task is a plain signature that would otherwise draw a new uuid.

    Chains and chords interpret ``_id`` differently, and a task with its own
    ``freeze`` may not accept it, so those are frozen exactly as Celery does.
    """
    if "task_id" not in task.options and freezes_as_signature(task):
        return task.freeze(_id=uuid(), **kwargs)
    return task.freeze(**kwargs)


def _maker(task: Signature, makers: dict[tuple[Any, ...], Any]) -> Any:
    """What ``task.AsyncResult`` is (``Signature.AsyncResult``), one per
    task name and app, so that the ids share their makers."""
    key = (task.task, id(task._app))
    make = makers.get(key)
    if make is None:
        make = signature_result_maker(task)
        makers[key] = make
    return make


def walk(tasks: Iterable[Any], app: Any, leaves: list[Signature], shape: list[int]) -> int:
    """Convert and clone every node as ``_freeze_unroll`` does, collecting
    leaves in pre-order and the shape codes the Rust planner reads.
    Returns how many nodes this level contributed."""
    count = 0
    for node in tasks:
        task = maybe_signature(node, app=app).clone()
        if isinstance(task, _celery_group):
            at = len(shape)
            shape.append(0)
            shape[at] = walk(task.tasks, app, leaves, shape)
        elif isinstance(task, _chain) and not task.tasks:
            # An empty chain contributes no task (celery issue #9772).
            continue
        else:
            shape.append(_core.LEAF)
            leaves.append(task)
        count += 1
    return count


def freeze_unroll(
    tasks: Iterable[Any],
    app: Any,
    new_tasks: list[Signature],
    group_id: str | None,
    chord: Any,
    root_id: str | None,
    parent_id: str | None,
    unread: bool = False,
) -> Any:
    """Celery's ``_freeze_unroll``: flattened, frozen children appended to
    ``new_tasks``; returns their results in the same order. With
    ``unread`` (a chord header's results, which nothing reads: see
    ``collect/subscriptions.py``) and every child a plain signature, the
    results are kept as their ids (``LazyResults``), made only if read."""
    leaves: list[Signature] = []
    shape: list[int] = []
    walk(tasks, app, leaves, shape)
    order = _core.freeze_unroll_order(shape)
    ids = LazyResults(None) if unread and all(map(plain_freeze, leaves)) else None
    results = []
    makers: dict[tuple[Any, ...], Any] = {}
    for group_index, leaf in enumerate(order):
        task = leaves[leaf]
        new_tasks.append(task)
        frozen = {
            "group_id": group_id,
            "chord": chord,
            "root_id": root_id,
            "parent_id": parent_id,
            "group_index": group_index,
        }
        if ids is not None:
            ids.add_id(freeze_options(task, **frozen), _maker(task, makers))
        else:
            results.append(freeze_leaf(task, **frozen))
    return results if ids is None else ids

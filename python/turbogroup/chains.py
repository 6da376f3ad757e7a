"""A chain as a group member: started as Celery 5.7.0 starts it, with its
first task's message published into the group's batch.

``group._apply_tasks`` calls ``chain.apply_async(producer=producer, ...)``
for a chain member, but ``_chain.run`` takes ``producer`` as a parameter of
its own and does not pass it on: Celery publishes each chain's first task
on a producer from the pool, outside the batch. So with the bulk publisher
a chain's message would leave before the messages queued ahead of it, one
round trip each, and outside all-or-nothing. ``into_batch`` is
``_chain.apply_async`` and ``_chain.run`` up to their last line, which
publishes the first task; the caller publishes it, into the batch (and
through the fast path when its message is one the encoder builds).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from celery.canvas import Signature, _chain, _prepare_chain_from_options

from turbogroup.celery_guards import chain_start_is_celerys, setting, unproxied


class ChildCall(NamedTuple):
    """How ``group._apply_tasks`` publishes a child:
    ``sig.apply_async(producer=producer, add_to_parent=False, chord=chord,
    args=args, kwargs=kwargs, **options)``."""

    sig: Any
    chord: Any
    args: Any
    kwargs: Any
    options: dict[str, Any]
    #: A chain's first task whose app is not the batch's: Celery's
    #: ``_chain.run`` drops the group's producer, so the task's own app
    #: publishes it, on a producer from that app's pool, at once.
    alone: bool = False

    def publish(self, producer: Any) -> Any:
        return self.sig.apply_async(
            producer=None if self.alone else producer,
            add_to_parent=False,
            chord=self.chord,
            args=self.args,
            kwargs=self.kwargs,
            **self.options,
        )


def into_batch(call: ChildCall, producer: Any, app: Any) -> ChildCall | None:
    """The call whose publish, on ``producer`` (``app``'s batch), sends the
    message ``call`` sends: for a chain member whose ``apply_async`` and
    ``run`` are Celery's own, its first task's call (None: the chain holds
    no task, and Celery publishes nothing; ``alone`` when another app
    publishes it); else ``call`` itself."""
    sig = call.sig
    if not isinstance(sig, _chain) or not chain_start_is_celerys(type(sig)):
        return call
    # _chain.apply_async
    args = call.args if call.args else ()
    kwargs = call.kwargs if call.kwargs else []
    chain_app = sig.app
    if setting(chain_app.conf, "task_always_eager"):
        return call
    # group._apply_tasks's call (its keywords collide as they would there),
    # over the chain's own options as _chain.apply_async merges them
    options = dict(
        sig.options, producer=producer, add_to_parent=False, chord=call.chord, **call.options
    )
    first = _run(sig, args, kwargs, app=chain_app, **options)
    if first is not None and _publishing_app(first.sig) is not unproxied(app):
        return first._replace(alone=True)
    return first


def _publishing_app(sig: Any) -> Any:
    """The app whose producer pool ``sig.apply_async()`` (no producer)
    publishes on: its task's (``Task.apply_async``), or the signature's
    own for a task sent by name and for a canvas."""
    if type(sig) is Signature:
        try:
            return sig.type._get_app()
        except KeyError:  # not registered: Signature._apply_async's send_task
            pass
    return unproxied(sig.app)


def _run(
    self: Any,
    args: Any = None,
    kwargs: Any = None,
    group_id: Any = None,
    chord: Any = None,
    task_id: Any = None,
    link: Any = None,
    link_error: Any = None,
    publisher: Any = None,
    producer: Any = None,
    root_id: Any = None,
    parent_id: Any = None,
    app: Any = None,
    group_index: Any = None,
    **options: Any,
) -> ChildCall | None:
    """``_chain.run`` (its parameters too: what it takes by name is not
    passed on to the first task), returning its last line's call instead
    of making it."""
    args = args if args else ()
    kwargs = kwargs if kwargs else []
    app = app or self.app
    use_link = self._use_link
    if use_link is None and setting(app.conf, "task_protocol") == 1:
        use_link = True
    args = tuple(args) + tuple(self.args) if args and not self.immutable else self.args
    tasks = None
    # task_id: the chain's own (its freeze set it to its last step's), and a
    # frozen step keeps the id it has.
    if not (args or kwargs or use_link or link_error or parent_id or chord):
        tasks = _prepared_by_freeze(self, root_id, group_id, group_index)
    if tasks is None:
        tasks, results_from_prepare = self.prepare_steps(
            args, kwargs, self.tasks, root_id, parent_id, link_error, app,
            task_id, group_id, chord, group_index=group_index,
        )  # fmt: skip
        if not results_from_prepare:
            return None
    if link:
        tasks[0].extend_list_option("link", link)
    first_task = tasks.pop()
    options = dict(_prepare_chain_from_options(options, tasks, use_link))
    # Always False here (the group's call sets it); ChildCall passes it.
    del options["add_to_parent"]
    return ChildCall(first_task, None, None, None, options)


def _prepared_by_freeze(chain: Any, root_id: Any, group_id: Any, group_index: Any) -> Any:
    """The steps ``prepare_steps`` gives ``run`` here, from the chain's own
    freeze, or None where Celery's pass must run.

    The group froze the chain (``freeze`` prepares it in place, ids and
    all). For a chain of plain task signatures, with nothing for ``run`` to
    add (no partial arguments, links, chord, ids of its own; the same group
    and root id), ``run``'s pass clones each frozen step, freezes the copy
    again to what it already is and makes results that are dropped: its
    steps are the frozen ones, field for field. Checked: every step is a
    plain signature, and ``freeze`` kept each as it was given (nothing
    spliced or converted)."""
    frozen = chain._frozen
    if frozen is None or group_index is not None:
        return None
    tasks, steps = frozen[0], chain.tasks
    if len(tasks) != len(steps) or not all(
        type(task) is Signature and task is step for task, step in zip(reversed(tasks), steps)
    ):
        return None
    if tasks[0].options.get("group_id") != group_id:
        return None
    if root_id and any(task.options.get("root_id") != root_id for task in tasks):
        return None
    return list(tasks)


__all__ = ["ChildCall", "into_batch"]

"""When two children of a group publish messages that differ only in their
ids, index and arguments: then what Celery resolves for the first one (a
message template) holds for the others, on every transport's fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from celery import Signature
from celery.app.routes import MapRoute
from celery.app.task import Task
from celery.backends.base import BaseBackend

from turbogroup.celery_guards import publishing_is_celerys_own, setting, task_apply_async_is_celerys

# A NamedTuple's own __new__ is a Python function; this makes one from a
# full tuple of its fields in C (once a child, or a message, on a big group).
new_tuple = tuple.__new__


class AlikeChild(NamedTuple):
    """A child whose message is its kind's ``template`` but for its ids
    and arguments: all a fast path keeps of it until it is sent. Its first
    six fields are what the encoder fills into the template, so the child
    itself is the encoder's item (no tuple per message); ``chain`` is a
    chain member's (the rest of its chain), None for other children;
    ``clock`` a clocked child's ``(eta, expires, expiration)`` as Celery
    computes them from its clock (``resolve.clock_fields``), None for the
    template's. Every field is given when it is made (``tuple.__new__``
    leaves no default).

    ``publish(task, group_index, task_id)`` is the dispatch's own way to
    send the child through Celery if the encoder cannot render it, shared
    by all its children: a closure per child cost ~270 bytes, a quarter of
    a dispatch's memory (``through_celery``)."""

    task_id: str
    group_index: int | None
    args: Any
    kwargs: Any
    chain: Any
    clock: Any
    template: Any
    task: Any = None  # the child's signature
    publish: Callable[[Any, int | None, str], Any] | None = None
    # the headers publish signal receivers or a tracer's wrappers added to
    # its message, after the template's (``publish/signalled.py``,
    # ``publish/wrapped.py``); None: none
    headers: dict[str, Any] | None = None

    def through_celery(self) -> None:
        # Only a child made by a plain dispatch has one (and is asked).
        assert self.publish is not None
        self.publish(self.task, self.group_index, self.task_id)


# Options that make Celery read the clock per message.
CLOCKED = frozenset({"countdown", "eta", "expires"})
# Options whose value is the child's own: the rest of a chain member's
# chain. Alike only where the encoder fills it in per child (``AlikeKeys``).
OWN = frozenset({"chain"})
# Option values compared by value in a key; others by identity.
ATOMIC = frozenset({str, int, float, bool, type(None)})


def atomic_key(value: Any) -> Any:
    """An atomic option value as a key part that is equal only for values
    written alike: ``1``, ``1.0`` and ``True`` are equal in Python but not
    in a message, nor are ``0.0`` and ``-0.0``."""
    kind = type(value)
    return (kind, repr(value)) if kind is float else (kind, value)


def fast_path_allowed(app: Any, producer: Any, wrapped: bool = False) -> bool:
    """Whether a fast path may build this app's messages at all: they are
    protocol 2 messages (the encoder's; protocol 1 is Celery's to write),
    Celery does nothing else per task that it would skip (a task-sent
    event, a backend's ``on_task_call``) and nothing compresses the body.
    ``wrapped``: publishing is Celery's own but for a tracer's wrappers,
    which the fast path runs (``celery_guards.publishing_wrappers``)."""
    conf = app.conf
    backend = app.backend
    return (
        (wrapped or publishing_is_celerys_own(app))
        and setting(conf, "task_protocol") == 2
        and not setting(conf, "task_send_sent_event")
        and setting(conf, "task_compression") is None
        and producer.compression is None
        # send_task calls backend.on_task_call per task; a fast path skips
        # it, which is right only where it does nothing (or is shadowed for
        # the dispatch: collect/subscriptions.py).
        and (
            getattr(type(backend), "on_task_call", None) is BaseBackend.on_task_call
            or "on_task_call" in backend.__dict__
        )
    )


def celery_publishing_task(app: Any, sig: Any) -> Task | None:
    """The registered task a plain signature publishes through, when that
    is Celery's own ``Task.apply_async`` (else None: Celery's path only)."""
    if type(sig) is not Signature:
        return None
    task = app.tasks.get(sig.task)
    if task is None or not task_apply_async_is_celerys(type(task)):
        return None
    if task.__v2_compat__ or task._dump_pydantic_arguments is not None:
        return None
    return task


def repr_limits(app: Any) -> dict[str, Any]:
    """The encoder's keyword arguments for Celery's ``argsrepr``/
    ``kwargsrepr`` limits on this app."""
    return {
        "argsrepr_maxsize": app.amqp.argsrepr_maxsize,
        "kwargsrepr_maxsize": app.amqp.kwargsrepr_maxsize,
        "repr_maxlevels": setting(app.conf, "task_repr_maxlevels"),
    }


def by_template(templates: Iterable[Any]) -> list[tuple[Any, list[int]]]:
    """The positions that share each template (by identity, in the order
    first seen), for one encoder call per template; positions whose
    template is None (whole messages) are left out."""
    runs: dict[int, tuple[Any, list[int]]] = {}
    for i, template in enumerate(templates):
        if template is None:
            continue
        run = runs.get(id(template))
        if run is None:
            run = runs[id(template)] = (template, [])
        run[1].append(i)
    return list(runs.values())


class AlikeKeys:
    """Keys equal for children whose messages are alike, for one router."""

    def __init__(
        self, router: Any, per_child: frozenset[str] = frozenset(), clocked: bool = False
    ) -> None:
        self.router = router
        # OWN options that the fast path fills in per child (AlikeChild.chain)
        self.per_child = per_child
        # whether it fills in each child's clock fields (AlikeChild.clock)
        self.clocked = clocked
        self._memoizable: dict[str, bool] = {}

    def key(self, task: Task, opts: dict[str, Any]) -> tuple[Any, ...] | None:
        """What a child's message depends on besides its id, index and
        arguments (``opts``: its options as ``Signature.apply_async`` merged
        them), when nothing else is read: no clock (countdown, eta,
        expires) unless ``clocked``, no per-argument shadow name or router.
        None: not alike any other child."""
        memoizable = self._memoizable.get(task.name)
        if memoizable is None:
            memoizable = self._memoizable[task.name] = type(
                task
            ).shadow_name is Task.shadow_name and all(
                isinstance(route, MapRoute) for route in self.router.routes
            )
        if (
            not memoizable
            or "task_id" not in opts
            or not (
                self.clocked
                or (
                    CLOCKED.isdisjoint(opts)
                    # a task's own expires is each message's own time too
                    and task._get_exec_options().get("expires") is None
                )
            )
            or not (OWN.isdisjoint(opts) or OWN.intersection(opts) <= self.per_child)
        ):
            return None
        return (task.name,) + tuple(
            (k, atomic_key(v) if type(v) in ATOMIC else id(v)) if k not in OWN else (k,)
            for k, v in opts.items()
            if k != "task_id" and k != "group_index"
        )


__all__ = [
    "ATOMIC",
    "atomic_key",
    "CLOCKED",
    "OWN",
    "AlikeKeys",
    "by_template",
    "celery_publishing_task",
    "fast_path_allowed",
    "repr_limits",
]

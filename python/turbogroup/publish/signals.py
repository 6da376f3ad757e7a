"""Celery's publish signals on the bulk path.

Celery's ``send_task_message`` sends ``before_task_publish``, publishes,
then sends ``after_task_publish``. A child of a bulk dispatch publishes
into the recording producer (``publish/deferred.py``), so Celery's
``after_task_publish`` would come before the message left the process.
Here it is held instead and sent, with Celery's arguments, once the step
holding the message has been sent, in dispatch order; a message never sent
(a child raised, the retries ran out) never gets one, as with Celery.

Tracers keep state in context variables between the two signals
(OpenTelemetry attaches its PRODUCER span as the current span in
``before_task_publish`` and detaches it in ``after_task_publish``). With
the second signal held, that span would become the parent of every later
child's and be detached out of order. So each child publishes in a copy of
the dispatch's context, and its held signals are sent in that same copy:
every child's span is a child of the dispatching span, as with Celery.

How it is held: ``after_task_publish``'s receivers are looked up through
``Signal._live_receivers`` at each send; the signal gets an instance
attribute that gives none while a child's message has just been recorded,
and Celery's lookup otherwise.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from typing import Any, NamedTuple

from celery import signals
from celery.utils.dispatch.signal import Signal


class Notice(NamedTuple):
    """One held ``after_task_publish``: Celery's arguments, and the child's
    context to send it in."""

    context: contextvars.Context
    sender: Any
    body: Any
    headers: Any
    exchange: Any
    routing_key: Any

    def send(self) -> None:
        self.context.run(
            signals.after_task_publish.send,
            sender=self.sender,
            body=self.body,
            headers=self.headers,
            exchange=self.exchange,
            routing_key=self.routing_key,
        )


class Awaiting:
    """A child publishing in its own context: the message it just
    recorded, whose ``after_task_publish`` is held into ``notices`` (keyed
    by the record's id)."""

    def __init__(self, context: contextvars.Context, notices: dict[int, Notice]) -> None:
        self.context = context
        self.notices = notices
        self.recorded: tuple[Any, Any, Any, Any, Any] | None = None

    def hold(self, sender: Any) -> None:
        assert self.recorded is not None
        record, body, headers, exchange, routing_key = self.recorded
        self.recorded = None
        self.notices[id(record)] = Notice(
            self.context, sender, body, headers, exchange, routing_key
        )


_awaiting: ContextVar[Awaiting | None] = ContextVar("turbogroup_awaiting", default=None)


def send_held(notices: dict[int, Notice], records: Iterable[Any]) -> None:
    """Send the held ``after_task_publish`` of these records (sent, or acked
    on RabbitMQ), in their order; each is sent once."""
    if not notices:
        return
    for record in records:
        notice = notices.pop(id(record), None)
        if notice is not None:
            notice.send()


def publish_receivers() -> bool:
    return bool(signals.before_task_publish.receivers or signals.after_task_publish.receivers)


def recorded(record: Any, body: Any, publish_kwargs: dict[str, Any]) -> None:
    """The recording producer has just recorded ``record``: Celery's next
    ``after_task_publish`` is for it."""
    awaiting = _awaiting.get()
    if awaiting is not None:
        awaiting.recorded = (
            record,
            body,
            publish_kwargs.get("headers"),
            publish_kwargs.get("exchange"),
            publish_kwargs.get("routing_key"),
        )


def in_own_context(publish: Callable[[], Any], notices: dict[int, Notice]) -> Callable[[], Any]:
    """``publish`` run in a copy of the current context, its recorded
    messages' ``after_task_publish`` held into ``notices``."""

    def run() -> Any:
        context = contextvars.copy_context()
        return context.run(_awaited, publish, Awaiting(context, notices))

    return run


def child_publish(publish: Callable[[], Any], batch: Any) -> Callable[[], Any]:
    """How a group child is published into ``batch``: in its own context
    while publish signals have receivers (see the module docstring)."""
    notices = getattr(batch, "notices", None)
    if notices is None or not publish_receivers():
        return publish
    return in_own_context(publish, notices)


def between_signals(
    context: contextvars.Context,
    notices: dict[int, Notice],
    message: Any,
    publish: Callable[[], Any],
) -> None:
    """Celery's ``send_task_message`` around ``publish``, run in
    ``context``: ``before_task_publish`` with ``message``'s arguments (a
    ``publish/signalled.py`` ``CeleryMessage``), the publish, then
    ``after_task_publish``, held into ``notices``. ``publish`` returns what
    the held signal is keyed by, or None when the recording producer
    recorded the message (and keyed it by its record)."""
    awaiting = Awaiting(context, notices)
    token = _awaiting.set(awaiting)
    try:
        signals.before_task_publish.send(**message.signal_arguments())
        key = publish()
        if key is not None:
            awaiting.recorded = (
                key, message.body, message.headers, message.exchange, message.routing_key
            )  # fmt: skip
        signals.after_task_publish.send(
            sender=message.name,
            body=message.body,
            headers=message.headers,
            exchange=message.exchange,
            routing_key=message.routing_key,
        )
    finally:
        _awaiting.reset(token)


def _awaited(publish: Callable[[], Any], awaiting: Awaiting) -> Any:
    token = _awaiting.set(awaiting)
    try:
        return publish()
    finally:
        _awaiting.reset(token)


def _holding_receivers(sender: Any) -> Any:
    awaiting = _awaiting.get()
    if awaiting is not None and awaiting.recorded is not None:
        awaiting.hold(sender)
        return []
    return Signal._live_receivers(signals.after_task_publish, sender)


def hold_after_publish() -> None:
    """Put the holding lookup on ``after_task_publish`` (idempotent; it
    is Celery's own lookup whenever no child is being recorded)."""
    signals.after_task_publish._live_receivers = _holding_receivers


__all__ = [
    "Notice",
    "between_signals",
    "child_publish",
    "hold_after_publish",
    "in_own_context",
    "publish_receivers",
    "recorded",
    "send_held",
]

"""The AMQP fast path with publish signal receivers (a tracer's): each
child's message is resolved by turbogroup, once per kind
(``publish/builder.py``), sent between the signals with Celery's arguments
(``publish/signalled.py``), and published by kombu's ``Producer.publish``
with the arguments Celery's ``send_task_message`` gives it, into the
dispatch's recording producer. What Celery's own path costs around that
(``apply_async``, ``send_task``, ``as_task_v2``, ``send_task_message``:
~450 µs a message against the receivers' ~65 here) is skipped; the records
are then sent batched and publisher-confirmed like any
(``publish/amqp.py``), ``after_task_publish`` once each is acked.

A receiver's changes (headers, properties, declarations) are in the
message as with Celery: kombu publishes what the receivers left. A child
alike its kind's first one whose receivers only added headers is
recorded by its kind's recipe instead, the record kombu's publish would
make (``publish/amqp_records.py``). A child
the resolver leaves to Celery (an exchange with bindings, a countdown or
an eta, which Celery may send to its native delayed delivery, a value the
reprs cannot render) goes through Celery's ``apply_async``, signals and
all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Signature

from turbogroup.celery_guards import PublishingWrappers
from turbogroup.publish.alike import (
    AlikeChild,
    AlikeKeys,
    fast_path_allowed,
    repr_limits,
)
from turbogroup.publish.amqp_records import BeforeKombu, SignalledKind, table_is_plain
from turbogroup.publish.builder import MessageBuilder
from turbogroup.publish.redis_runs import Message
from turbogroup.publish.resolve import Clock, MessageResolver
from turbogroup.publish.signalled import CeleryMessage, SignalledMessages
from turbogroup.publish.wrapped import WrappedPublishing


class AmqpSignalledDispatch:
    """The children of one dispatch on RabbitMQ with publish receivers
    (module docstring). Same interface as ``AmqpFastDispatch`` for
    ``turbogroup.plain`` and ``ConfirmBatch``."""

    #: Chain members' first messages are Celery's (``plain_chains`` is Redis's).
    alike_chains = False

    def __init__(self, app: Any, batch: Any, wrappers: PublishingWrappers | None = None) -> None:
        producer = batch.producer  # the DeferringProducer
        self.app = app
        self.producer = producer
        self.enabled = fast_path_allowed(app, producer, wrapped=wrappers is not None)
        limits = repr_limits(app)
        self.resolver = MessageResolver(
            app, producer, producer.channel, declares=False, delays_through_celery=True
        )
        keys = AlikeKeys(app.amqp.router)
        self.builder = MessageBuilder(self.resolver, keys, producer, self.enabled)
        # its records keep the headers' reprs as the receivers saw them
        self.signalled = SignalledMessages(app, producer, limits, reprs_from_arguments=False)
        self.limits = limits
        # id(template) -> its kind's record recipe (publish/amqp_records.py),
        # for the kinds whose first message it rebuilt exactly
        self._kinds: dict[int, SignalledKind] = {}
        # With a tracer's wrappers (and no receivers), kombu's publish of
        # each alike child's message runs inside them (publish/wrapped.py)
        self.wrapped = (
            WrappedPublishing(self.builder, wrappers, limits, self._publish_wrapped)
            if wrappers is not None
            else None
        )
        # the records published here (by_engine in the dispatch report)
        self._recorded: set[int] = set()
        self.fallbacks: Counter[str] = Counter()

    @property
    def last_alike(self) -> tuple[str, dict[str, Any]] | None:
        return self.builder.last_alike

    @property
    def last_clock(self) -> Clock | None:
        return self.builder.last_clock  # None: the keys take no clock

    def add(
        self,
        sig: Signature,
        chord: Any,
        args: Any,
        kwargs: Any,
        options: dict[str, Any],
        fallback: Callable[[], Any],
    ) -> bool:
        """Publish ``sig``'s message between the signals if this path can
        build it; False means the caller must publish it through Celery."""
        del fallback  # the caller's, when this returns False
        built = self.builder.build(sig, chord, args, kwargs, options)
        if built is None:
            return False
        task_id, qname, message = built
        if self.wrapped is None:
            return self._publish(task_id, message)
        # the first of its kind: an alike child of its own template
        child = (
            message if isinstance(message, AlikeChild) else self.builder.own_child(task_id, message)
        )
        if child is None:
            return False  # not alike any: its wrappers run around Celery's publish
        self.wrapped.publish(qname, child)
        return True

    def add_alike(self, qname: str, child: AlikeChild) -> None:
        """Publish a child whose message is ``child.template`` (a
        ``last_alike``) but for its id, index and arguments."""
        if self.wrapped is not None:
            self.wrapped.publish(qname, child)
        elif not self._publish(child.task_id, child):
            child.through_celery()

    def _publish_wrapped(self, qname: str, child: AlikeChild, publish: Callable[[], None]) -> None:
        # kombu's publish of it, inside its wrappers, into the recording producer
        del qname, child  # in the record
        deferred = self.producer.deferred
        before = len(deferred)
        publish()
        self._recorded.update(map(id, deferred[before:]))

    def _publish(self, task_id: str, message: Message) -> bool:
        deferred = self.producer.deferred
        before = len(deferred)
        last = self.builder.last_alike
        # a kind's first message: its record may be its kind's recipe
        template = message if last is not None and message is last[1] else None
        queue = partial(self._queue, template)
        if not self.signalled.publish(self.builder.built(task_id, message), queue):
            self.fallbacks["arguments the encoder cannot render"] += 1
            return False
        self._recorded.update(map(id, deferred[before:]))
        return True

    def _queue(
        self,
        template: dict[str, Any] | None,
        final: Any,
        message: CeleryMessage,
        through_kombu: Callable[[], Any],
    ) -> Any:
        """Record a message the receivers only added headers to: an alike
        child's by its kind's recipe, any other by kombu's publish (the
        record is then the key of its held ``after_task_publish``)."""
        if isinstance(final, AlikeChild):
            kind = self._kinds.get(id(final.template))
            record = None if kind is None else kind.record_of(final, message, self.limits)
            if record is not None:
                self.producer.owner.check(record, table_checked=table_is_plain(final))
                self.producer.deferred.append(record)
                return record
        if template is None:
            through_kombu()
            return None
        before = BeforeKombu.of(message)
        deferred = self.producer.deferred
        count = len(deferred)
        through_kombu()
        if len(deferred) == count + 1:
            kind = SignalledKind.learn(deferred[-1], message, before, self.limits)
            if kind is not None:
                self._kinds[id(template)] = kind
        return None

    def check(self) -> None:
        """Nothing to check: each message was checked as it was recorded."""

    def records(self, entries: list[Any]) -> list[Any]:
        """The records to send: as they were recorded."""
        return entries

    def built_here(self, records: list[Any], built: list[Any]) -> int:
        """How many of ``records`` (to be sent as ``built``) this path
        published."""
        del built  # the same records
        recorded = self._recorded
        return sum(1 for record in records if id(record) in recorded)


__all__ = ["AmqpSignalledDispatch"]

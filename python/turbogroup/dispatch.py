"""What one group dispatch shares among its children: where the messages
go (:class:`Sending`) and what every child is published with
(:class:`GroupCall`). ``group.apply_async`` makes them once (the first
with :func:`open_sending`); the paths that publish the children
(``group._apply_tasks``, ``plain.PlainDispatch``) read them."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from turbogroup.celery_guards import publishing_wrappers
from turbogroup.collect.subscriptions import no_subscriptions_during_dispatch
from turbogroup.publish import bulk_publish_allowed, bulk_publisher, fast_dispatch_class
from turbogroup.publish.amqp import ConfirmBatch
from turbogroup.publish.amqp_fast import AmqpFastDispatch
from turbogroup.publish.amqp_signalled import AmqpSignalledDispatch
from turbogroup.publish.batch import Batch
from turbogroup.publish.redis import RedisFastDispatch
from turbogroup.publish.signals import publish_receivers


@dataclass(frozen=True)
class GroupCall:
    """The group's ids, and the partial arguments and options its
    ``apply_async`` was called with, as each child's publish gets them."""

    group_id: str
    root_id: str | None
    args: Any
    kwargs: Any
    options: dict[str, Any]


@dataclass(frozen=True)
class Sending:
    """Where a dispatch's messages go: the producer children publish into,
    the bulk publisher behind it (None: Celery's per-message publish), the
    transport's fast path (None: none applies), and whether results need
    no subscription while being dispatched."""

    producer: Any
    batch: Any
    fast: Any
    lazy_results: bool


def open_sending(stack: ExitStack, app: Any, producer: Any, options: dict[str, Any]) -> Sending:
    """Enter what a dispatch publishes through (its fast path: Redis's or
    the memory transport's, or None). A dispatch nested in another joins
    the outer one's."""
    producer = stack.enter_context(app.producer_or_acquire(producer))
    # The strategy for the transport (publish/__init__.py): every
    # message built first, then sent in batches (confirmed and
    # pipelined on RabbitMQ, on a channel of its own).
    batch = (
        stack.enter_context(bulk_publisher(app, producer, options))
        if bulk_publish_allowed(app, producer)
        else None
    )
    if batch is not None:
        producer = batch.producer
    lazy_results = stack.enter_context(no_subscriptions_during_dispatch(app))
    return Sending(producer, batch, _fast_path(app, batch), lazy_results)


def _fast_path(app: Any, batch: Any) -> RedisFastDispatch | None:
    """Redis and kombu's in-memory transport: the dispatch's Rust-encoded
    fast path, shared with any dispatch nested in it."""
    if not isinstance(batch, Batch):
        return None
    if batch.fast is None:
        channel = batch.producer.channel
        cls = fast_dispatch_class(channel)
        if cls is not None:
            batch.fast = cls(app, batch.producer, channel, batch.retry, batch.retry_policy)
    return batch.fast if batch.fast is not None and batch.fast.app is app else None


def amqp_fast_path(app: Any, batch: Any) -> AmqpFastDispatch | AmqpSignalledDispatch | None:
    """RabbitMQ: children alike the first of their kind, built from its
    message; with publish signal receivers (or a tracer's wrappers), each
    message resolved here and published by kombu between the signals (or
    inside the wrappers). Only plain dispatches use it (``plain.py``);
    elsewhere Celery publishes each child into the batch."""
    if not isinstance(batch, ConfirmBatch):
        return None
    if batch.fast is None:
        # a tracer's wrappers run around kombu's publish of each message,
        # unless signals have receivers too (publish/wrapped.py)
        receivers = publish_receivers()
        wrappers = None if receivers else publishing_wrappers(app)
        batch.fast = (
            AmqpSignalledDispatch(app, batch, wrappers)
            if receivers or wrappers is not None
            else AmqpFastDispatch(app, batch, batch.max_message_size)
        )
    return batch.fast if batch.fast.app is app else None

"""Publishing a group's messages in bulk, all or nothing.

:func:`bulk_publisher` picks the strategy for the producer's transport, in
one place: publisher-confirmed pipelining on RabbitMQ (``publish/amqp.py``),
batches everywhere else (``publish/batch.py``; pipelined transactions on
Redis, message by message on transports kombu does not batch). Both build
every message of the group before sending any (``publish/deferred.py``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

from turbogroup._compat import RedisChannel
from turbogroup.celery_guards import setting
from turbogroup.publish.amqp import DEFAULT_CONFIRM_WINDOW, publish_confirmed, uses_pyamqp
from turbogroup.publish.batch import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WINDOW,
    bulk_publish_allowed,
    publish_batch,
)
from turbogroup.publish.deferred import DeferringProducer
from turbogroup.publish.memory import MemoryChannel, MemoryFastDispatch
from turbogroup.publish.redis import RedisFastDispatch
from turbogroup.publish.retry import merged_policy


class BulkPublisher(Protocol):
    """What ``group._apply_tasks`` drives: publish each child with
    ``producer``, call ``published(task_id)`` after it; the context manager
    sends everything at its end. ``fast`` is the transport's fast path (set
    by the first dispatch that uses it). A failed send raises
    ``PublishError``."""

    producer: Any
    fast: Any
    on_sent: Any  # on_sent(done, total) as messages are confirmed sent, or None

    def published(self, task_id: str) -> None: ...


def bulk_publisher(
    app: Any, producer: Any, options: dict[str, Any]
) -> AbstractContextManager[BulkPublisher]:
    """The bulk strategy for ``producer``'s transport.

    ``options`` are the group's ``apply_async`` options: their ``retry`` and
    ``retry_policy``, merged over the app's ``task_publish_retry`` and
    ``task_publish_retry_policy`` as Celery's ``send_task_message`` merges
    them, govern connecting and resending.

    A dispatch inside another one (a group or chord among a group's
    children, handed the outer dispatch's producer) joins the outer one: its
    messages are sent with the rest, all or nothing.
    """
    if isinstance(producer, DeferringProducer):
        return nullcontext(producer.owner)
    retry, policy = merged_policy(app, options)
    conf = app.conf
    size = int(setting(conf, "turbogroup_batch_size", DEFAULT_BATCH_SIZE))
    if size < 1:
        raise ValueError(f"turbogroup_batch_size must be at least 1, not {size}")
    if uses_pyamqp(producer.connection):
        return publish_confirmed(
            producer,
            size=size,
            retry=retry,
            retry_policy=policy,
            max_message_size=setting(conf, "turbogroup_max_message_size"),
            window=int(setting(conf, "turbogroup_confirm_window", DEFAULT_CONFIRM_WINDOW)),
            confirm_timeout=setting(conf, "turbogroup_confirm_timeout"),
        )
    return publish_batch(
        producer,
        size=size,
        retry=retry,
        retry_policy=policy,
        reacquire=app.producer_or_acquire,
        window=int(setting(conf, "turbogroup_confirm_window", DEFAULT_WINDOW)),
    )


def fast_dispatch_class(channel: Any) -> type[RedisFastDispatch] | None:
    """The Rust-encoded fast path for a channel's transport: Redis, or
    kombu's in-memory transport, which takes the same messages
    (``publish/memory.py``); None elsewhere."""
    if isinstance(channel, RedisChannel):
        return RedisFastDispatch
    if isinstance(channel, MemoryChannel):
        return MemoryFastDispatch
    return None


__all__ = ["BulkPublisher", "bulk_publish_allowed", "bulk_publisher", "fast_dispatch_class"]

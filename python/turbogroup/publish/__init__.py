"""Publishing a group's messages in bulk.

:func:`bulk_publisher` picks the strategy for the producer's transport, in
one place: publisher-confirmed pipelining on RabbitMQ (``publish/amqp.py``),
kombu's ``Producer.batch()`` everywhere else (``publish/batch.py``; one round
trip per batch on Redis, immediate publishes on transports kombu does not
batch).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from turbogroup.publish.amqp import publish_confirmed, uses_pyamqp
from turbogroup.publish.batch import bulk_publish_allowed, publish_batch


class BulkPublisher(Protocol):
    """What ``group._apply_tasks`` drives: publish each child with
    ``producer``, call ``published(task_id)`` after it, ``flush()`` at the end
    (the context manager does). A failed batch raises ``PublishError``."""

    producer: Any

    def published(self, task_id: str) -> None: ...

    def flush(self) -> None: ...


def bulk_publisher(
    app: Any, producer: Any, options: dict[str, Any]
) -> AbstractContextManager[BulkPublisher]:
    """The bulk strategy for ``producer``'s transport.

    ``options`` are the group's ``apply_async`` options: their ``retry`` and
    ``retry_policy``, merged over the app's ``task_publish_retry`` and
    ``task_publish_retry_policy`` as Celery's ``send_task_message`` merges
    them, govern (re)connecting before the first message on RabbitMQ.
    """
    if uses_pyamqp(producer.connection):
        retry = options.get("retry")
        return publish_confirmed(
            producer,
            retry=app.conf.task_publish_retry if retry is None else retry,
            retry_policy={
                **app.conf.task_publish_retry_policy,
                **(options.get("retry_policy") or {}),
            },
        )
    return publish_batch(producer)


__all__ = ["BulkPublisher", "bulk_publish_allowed", "bulk_publisher"]

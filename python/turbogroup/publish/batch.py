"""Bulk publishing through kombu's ``Producer.batch()``.

Celery publishes a group one message, one round trip at a time. kombu 5.7
can buffer publishes per transport (on Redis, a non-transactional pipeline)
and send them in one round trip per batch. The messages stay exactly the
ones Celery builds: this only changes when the bytes leave.

We flush explicitly every ``size`` tasks instead of letting kombu flush on
its own, so that when a flush fails we know exactly which task ids were in
it: those are reported as not confirmed sent, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import signals

from turbogroup.errors import PublishError

DEFAULT_BATCH_SIZE = 1000


def bulk_publish_allowed(app: Any) -> bool:
    """Batching is observably equivalent to Celery only when nobody listens
    to the publish signals: ``after_task_publish`` would fire before the
    message actually left."""
    del app
    return not (signals.before_task_publish.receivers or signals.after_task_publish.receivers)


class Batch:
    """Tracks the ids buffered since the last successful flush.

    ``producer`` is the one to publish with: here the caller's own, whose
    publishes kombu buffers while the batch is open.
    """

    def __init__(self, kombu_batch: Any, size: int, producer: Any) -> None:
        self.producer = producer
        self._kombu_batch = kombu_batch
        self._size = size
        # Flushed before kombu's batch: a transport's own fast path (whose
        # fallbacks publish into kombu's batch, so they go out right after).
        self.fast: Any = None
        self.pending: list[str] = []
        self.confirmed = 0

    def published(self, task_id: str) -> None:
        self.pending.append(task_id)
        if len(self.pending) >= self._size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        try:
            if self.fast is not None:
                self.fast.flush()
            self._kombu_batch.flush()
        except Exception as exc:
            raise PublishError(list(self.pending), self.confirmed) from exc
        self.confirmed += len(self.pending)
        self.pending.clear()


@contextmanager
def publish_batch(producer: Any, size: int = DEFAULT_BATCH_SIZE) -> Iterator[Batch]:
    # kombu's own auto-flush is set out of reach (a batch holds at most
    # `size` tasks, each at most a few commands) so every flush is ours.
    with producer.batch(max_size=size * 16) as kombu_batch:
        batch = Batch(kombu_batch, size, producer)
        yield batch
        batch.flush()

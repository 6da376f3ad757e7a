"""Publisher-confirmed, pipelined publishing on RabbitMQ (py-amqp transport).

Celery publishes each task with a plain ``basic.publish``: the call returns
before the broker has the message, so a connection closed mid-dispatch can
lose messages silently (measured on Celery 5.7.0: reconnect, return OK, one
task missing). Here every message of the group goes out on a dedicated
channel in confirm mode (``confirm.select``):

* pipelined: a batch of messages is written without waiting, then every
  ack of that batch is drained before the next batch starts; the channel's
  delivery tags (1, 2, 3, ... per channel in confirm mode) map back to the
  task ids of the messages;
* ``apply_async`` returns only once every message is acked;
* a nack, a channel error or a connection error raises
  :class:`~turbogroup.errors.PublishError` naming exactly the task ids of the
  failed batch that got no ack (nacked, or still unacknowledged when the
  channel or connection died, plus the message being published), and how
  many messages were confirmed before.

The pooled producer Celery hands to ``group._apply_tasks`` keeps its own
channel untouched (a channel cannot leave confirm mode, and the pool reuses
it for Celery's per-task publishes). A :class:`kombu.Producer` bound to the
dedicated channel is what each ``sig.apply_async(producer=...)`` receives, so
the messages are exactly the ones Celery builds (headers, properties, body,
routing, ``declare``); only the channel they travel on differs.

Not covered: a child that does not hand the producer on publishes through
Celery's pool as Celery does, without confirms. Celery 5.7.0's
``chain.run`` drops the ``producer`` it is given, so the first message of a
chain inside a group goes out on another pooled connection (unconfirmed, and
possibly ahead of the group's other messages: Celery's own group does the same).

Retries (``task_publish_retry`` / ``task_publish_retry_policy`` and the
``retry`` / ``retry_policy`` options, merged per message by Celery as
usual). Celery retries by reconnecting (kombu's ``Connection.ensure``) and
republishing the one message whose publish raised. With pipelining, the
messages written before a connection dropped are in an unknown state: the
broker may have queued them without the ack reaching us, so republishing
them could queue duplicates, and nobody would know. We therefore retry only
where no duplicate is possible:

* opening the confirm channel (connecting, reconnecting) before any message,
  per the group's retry options: no message is involved;
* a *recoverable connection error* (or one of the policy's ``retry_errors``)
  raised while publishing a message when every earlier message of the
  dispatch is already acked: the failed write cannot have delivered a
  complete message, so the connection is re-established per the message's
  policy (``max_retries``, ``interval_start``/``_step``/``_max``, as kombu's
  ``ensure`` does) and that message alone is published again.

Everything else (a nack, a channel error, a connection error with messages
still unacknowledged, retries exhausted, no ack within the confirm timeout)
raises ``PublishError`` at once: at-least-once is then the caller's choice,
with the exact ids in hand (re-dispatching the same frozen group keeps its ids).
kombu's own per-message retry is switched off on the dedicated producer:
its ``ensure`` would revive the producer onto the connection's default
channel, which is not in confirm mode.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Producer
from kombu.exceptions import OperationalError

from turbogroup.errors import PublishError

logger = logging.getLogger(__name__)

# Tasks per batch: written back to back, then all their acks drained.
DEFAULT_BATCH_SIZE = 1000
# Seconds without any frame from the broker while waiting for acks before the
# batch is given up (RabbitMQ always acks or nacks a message it received, so
# this only fires on a stalled broker), unless a message sets confirm_timeout.
DEFAULT_CONFIRM_TIMEOUT = 60.0


def uses_pyamqp(connection: Any) -> bool:
    """True for a kombu connection on the py-amqp transport (``amqp://``,
    ``pyamqp://``, ``amqps://``), the one whose channels we drive here."""
    from kombu.transport.pyamqp import Transport

    return connection is not None and isinstance(connection.transport, Transport)


class ConfirmProducer(Producer):
    """A ``kombu.Producer`` on the dedicated confirm channel: every publish is
    recorded by the :class:`ConfirmBatch` under its delivery tag."""

    def __init__(self, channel: Any, batch: ConfirmBatch, template: Any) -> None:
        self._confirm_batch = batch
        # Same defaults as the pooled producer Celery would have used, so the
        # messages are identical.
        super().__init__(
            channel,
            exchange=template.exchange,
            routing_key=template.routing_key,
            serializer=template.serializer,
            compression=template.compression,
            auto_declare=template.auto_declare,
            on_return=template.on_return,
        )

    def publish(
        self,
        body: Any,
        *args: Any,
        retry: bool = False,
        retry_policy: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._confirm_batch.publish(
            super().publish, body, args, kwargs, retry, retry_policy or {}
        )


def _task_id(kwargs: dict[str, Any]) -> str:
    # Celery sets correlation_id to the task id (protocols 1 and 2); the
    # protocol 2 header is the fallback for hand-made messages.
    task_id = kwargs.get("correlation_id") or (kwargs.get("headers") or {}).get("id")
    return str(task_id)


def _interval(retries: int, policy: dict[str, Any]) -> float:
    # kombu's ensure: first retry at interval_start, then step up to the max.
    start = float(policy.get("interval_start", 0))
    step = float(policy.get("interval_step", 0.2))
    return min(start + retries * step, float(policy.get("interval_max", 1)))


class ConfirmBatch:
    """Tracks delivery tag -> task id on the dedicated channel of one dispatch.

    Same shape as :class:`turbogroup.publish.batch.Batch`: ``producer`` to
    publish with, ``published(task_id)`` after each child, ``flush()``.
    """

    def __init__(
        self,
        producer: Any,
        size: int = DEFAULT_BATCH_SIZE,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
    ) -> None:
        self._connection = producer.connection
        self._size = size
        conn = self._connection
        self._errors: tuple[type[BaseException], ...] = (
            *conn.connection_errors,
            *conn.channel_errors,
        )
        self._recoverable: tuple[type[BaseException], ...] = tuple(
            conn.recoverable_connection_errors
        )
        # delivery tag -> task id, unacknowledged; tags in publish order so a
        # `multiple` ack walks them from the front.
        self._pending: dict[int, str] = {}
        self._order: deque[int] = deque()
        self._nacked: dict[int, str] = {}
        self._tag = 0
        self._children = 0
        self._confirm_timeout: float | None = None
        self.confirmed = 0
        self._channel: Any = None
        policy = retry_policy or {}
        try:
            channel = self._retrying(self._open_channel, retry, policy)
        except self._errors as exc:
            # Nothing was sent; Celery raises kombu's OperationalError here.
            raise OperationalError(str(exc)) from exc
        self.producer = ConfirmProducer(channel, self, producer)

    # -- channel ----------------------------------------------------------

    def _open_channel(self) -> Any:
        # kombu's pooled producer closes its connection when a dispatch
        # raised (Producer.__exit__ -> pool.replace) and is handed out again
        # closed; Celery's publishes reconnect through ensure, so do we.
        self._connection.connect()
        channel = self._connection.channel()
        # With the transport option confirm_publish=True py-amqp makes every
        # basic_publish wait for its own ack; we pipeline, so publish plain.
        channel.basic_publish = channel._basic_publish
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.confirm_select()
        self._channel = channel
        self._tag = 0  # delivery tags restart at 1 on every channel
        return channel

    def _drop_connection(self) -> None:
        # The connection is gone: forget it without network I/O (as kombu's
        # ensure does) so the next channel() reconnects.
        self._channel = None
        self._connection.collect()

    def _retrying(self, fun: Callable[[], Any], retry: bool, policy: dict[str, Any]) -> Any:
        retry_errors = (*self._recoverable, *tuple(policy.get("retry_errors") or ()))
        retries = 0
        while True:
            try:
                return fun()
            except retry_errors as exc:
                if not self._may_retry(retry, retries, policy):
                    raise
                wait = _interval(retries, policy)
                logger.warning("broker connection lost (%r); retrying in %ss", exc, wait)
                self._drop_connection()
                time.sleep(wait)
                retries += 1

    def _may_retry(self, retry: bool, retries: int, policy: dict[str, Any]) -> bool:
        max_retries = policy.get("max_retries", 3)
        return bool(retry) and (max_retries is None or retries < max_retries)

    def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is None or channel.connection is None:
            return
        try:
            channel.close()
        except self._errors:
            # The connection died under us; the error that matters was raised.
            logger.debug("closing the confirm channel failed", exc_info=True)

    # -- confirms ---------------------------------------------------------

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, nacked=False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, nacked=True)

    def _settle(self, delivery_tag: int, multiple: bool, nacked: bool) -> None:
        pending = self._pending
        if multiple:
            order = self._order
            tags = []
            while order and order[0] <= delivery_tag:
                tags.append(order.popleft())
        else:
            tags = [delivery_tag]
        for tag in tags:
            task_id = pending.pop(tag, None)
            if task_id is None:
                continue  # settled before by a single ack
            if nacked:
                self._nacked[tag] = task_id
            else:
                self.confirmed += 1

    def _failure(self, current: str | None = None) -> PublishError:
        unsettled = {**self._pending, **self._nacked}
        ids = [unsettled[tag] for tag in sorted(unsettled)]
        if current is not None:
            ids.append(current)
        self._pending.clear()
        self._order.clear()
        self._nacked.clear()
        return PublishError(ids, self.confirmed)

    # -- the Batch interface ----------------------------------------------

    def publish(
        self,
        publish: Callable[..., Any],
        body: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: bool,
        policy: dict[str, Any],
    ) -> Any:
        task_id = _task_id(kwargs)
        confirm_timeout = kwargs.get("confirm_timeout")
        if confirm_timeout is not None:
            self._confirm_timeout = max(self._confirm_timeout or 0, confirm_timeout)
        retry_errors = (*self._recoverable, *tuple(policy.get("retry_errors") or ()))
        retries = 0
        while True:
            try:
                if self._channel is None:
                    self.producer.revive(self._open_channel())
                result = publish(body, *args, retry=False, retry_policy=policy, **kwargs)
                break
            except self._errors as exc:
                # Only when nothing is unacknowledged can a republish not
                # duplicate: see the module docstring.
                settled = not self._pending and not self._nacked
                if not (
                    settled
                    and isinstance(exc, retry_errors)
                    and self._may_retry(retry, retries, policy)
                ):
                    raise self._failure(task_id) from exc
                wait = _interval(retries, policy)
                logger.warning(
                    "broker connection lost publishing task %s (%r); retrying in %ss",
                    task_id,
                    exc,
                    wait,
                )
                self._drop_connection()
                time.sleep(wait)
                retries += 1
        self._tag += 1
        self._pending[self._tag] = task_id
        self._order.append(self._tag)
        return result

    def published(self, task_id: str) -> None:
        # A child (which may have sent several messages, e.g. a chain) is
        # done; its messages are tracked by tag already.
        del task_id
        self._children += 1
        if self._children >= self._size:
            self.flush()

    def flush(self) -> None:
        self._children = 0
        if not self._pending and not self._nacked:
            self._order.clear()
            return
        timeout = self._confirm_timeout or DEFAULT_CONFIRM_TIMEOUT
        try:
            while self._pending:
                connection = self._channel.connection if self._channel else None
                if connection is None:
                    raise OperationalError("confirm channel closed before every ack arrived")
                connection.drain_events(timeout=timeout)
        except (*self._errors, OperationalError) as exc:
            raise self._failure() from exc
        if self._nacked:
            raise self._failure()
        self._order.clear()


@contextmanager
def publish_confirmed(
    producer: Any,
    size: int = DEFAULT_BATCH_SIZE,
    retry: bool = True,
    retry_policy: dict[str, Any] | None = None,
) -> Iterator[ConfirmBatch]:
    batch = ConfirmBatch(producer, size, retry, retry_policy)
    try:
        yield batch
        batch.flush()
    except PublishError:
        raise
    except BaseException as exc:
        # The dispatch failed for another reason (a child that cannot be
        # serialized, ...): the messages already written are still worth
        # confirming, and if that fails too the caller learns which.
        try:
            batch.flush()
        except PublishError as publish_error:
            exc.add_note(str(publish_error))
        raise
    finally:
        batch.close()


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ConfirmBatch",
    "ConfirmProducer",
    "publish_confirmed",
    "uses_pyamqp",
]

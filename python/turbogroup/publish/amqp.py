"""Publisher-confirmed, pipelined publishing on RabbitMQ (py-amqp transport).

Celery publishes each task with a plain ``basic.publish``: the call returns
before the broker has the message, so a connection closed mid-dispatch can
lose messages silently (measured on Celery 5.7.0: reconnect, return OK, one
task missing). Here the group is all-or-nothing and confirmed:

* every message is built first (``publish/deferred.py``): a child that
  raises, or a message larger than the broker accepts, leaves nothing sent;
* then the messages go out on a dedicated channel in confirm mode
  (``confirm.select``), pipelined: a batch is written without waiting, and
  before the next batch the acks that arrived are read, waiting only while
  more than the window's batches (``turbogroup_confirm_window``, 4 by
  default; 1 waits for every ack of a batch) are unacknowledged; the
  channel's delivery tags (1, 2, 3, ... per channel in confirm mode) map
  back to the task ids;
* ``apply_async`` returns only once every message is acked;
* a nack, a channel error or a connection error raises
  :class:`~turbogroup.errors.PublishError` naming exactly the task ids not
  confirmed: those of the failed batch that got no ack (nacked, or still
  unacknowledged when the channel or connection died, plus the message being
  written) and every message after them, never written.

The pooled producer Celery hands to ``group._apply_tasks`` keeps its own
channel untouched (a channel cannot leave confirm mode, and the pool reuses
it for Celery's per-task publishes). The messages are exactly the ones
Celery builds (headers, properties, body, routing, ``declare``); only the
channel they travel on, and when, differ.

Not covered: a child that does not hand the producer on (a chain whose
first task is another app's, ``turbogroup/chains.py``) publishes through
Celery's pool as Celery does, at once and without confirms.

Retries follow Celery's policy only where a rewrite cannot duplicate a
message (docs/ARCHITECTURE.md, "Retries on RabbitMQ"); anything else
raises ``PublishError`` with the exact unconfirmed ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from kombu import Producer
from kombu.exceptions import OperationalError

from turbogroup.errors import MessageTooLargeError, PublishError
from turbogroup.publish.amqp_acks import Acks
from turbogroup.publish.amqp_content import writes_for_certain
from turbogroup.publish.amqp_declares import ChannelDeclares
from turbogroup.publish.amqp_wire import (
    DEFAULT_MAX_MESSAGE_SIZE,
    coalesced_writes,
    confirm_channel,
    default_max_message_size,
    uses_pyamqp,
)
from turbogroup.publish.deferred import Deferred, DeferringProducer, replay, settings_of
from turbogroup.publish.report import DispatchReport
from turbogroup.publish.retry import interval, may_retry, retry_errors, retrying
from turbogroup.publish.signals import Notice, hold_after_publish, send_held

logger = logging.getLogger(__name__)

# Tasks per batch: written back to back, then acks drained.
DEFAULT_BATCH_SIZE = 1000
# Batches written ahead of their acks (1: each batch's acks are drained
# before the next batch is written).
DEFAULT_CONFIRM_WINDOW = 4
# Seconds without any frame from the broker while waiting for acks before the
# batch is given up (RabbitMQ always acks or nacks a message it received, so
# this only fires on a stalled broker), unless a message sets confirm_timeout.
DEFAULT_CONFIRM_TIMEOUT = 60.0


class ConfirmBatch:
    """The bulk publisher of one dispatch on RabbitMQ (module docstring).

    Same shape as :class:`turbogroup.publish.batch.Batch`: ``producer`` to
    publish with, ``published(task_id)`` after each child, ``flush()``.
    """

    # The AMQP fast path (publish/amqp_fast.py), set by the first plain
    # dispatch that uses this batch; its alike children wait among the
    # records and are built a batch at a time when sent.
    fast: Any = None
    # on_sent(done, total): called as batches are confirmed (progress).
    on_sent: Any = None
    # Seconds to wait for acks when no message set its own confirm_timeout
    # (turbogroup_confirm_timeout).
    default_confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT

    def __init__(
        self,
        producer: Any,
        size: int = DEFAULT_BATCH_SIZE,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
        max_message_size: int | None = None,
        window: int = DEFAULT_CONFIRM_WINDOW,
    ) -> None:
        self._template = producer
        self._connection = conn = producer.connection
        self._size = size
        # Unacknowledged messages allowed once a batch is written.
        self._in_flight = max(window - 1, 0) * size
        # None: the server's default, known once connected (_open_channel)
        self.max_message_size = max_message_size or DEFAULT_MAX_MESSAGE_SIZE
        self._limit_set = max_message_size is not None
        self._errors: tuple[type[BaseException], ...] = (
            *conn.connection_errors,
            *conn.channel_errors,
        )
        self._recoverable: tuple[type[BaseException], ...] = tuple(
            conn.recoverable_connection_errors
        )
        self._acks = Acks()
        self._confirm_timeout: float | None = None
        self._ids: list[str] = []  # every message of the dispatch, in order
        self._next = 0  # index in _ids of the next message to write
        self._reported = 0  # confirmed, as last told to on_sent
        # record id -> its held after_task_publish (publish/signals.py),
        # sent once the message is acked, in dispatch order
        self.notices: dict[int, Notice] = {}
        self._announced = 0  # records whose notices were sent (or had none)
        hold_after_publish()
        self._channel: Any = None
        self._sender: Any = None
        self._declares = ChannelDeclares()  # on the current channel
        policy = retry_policy or {}
        self._retry, self._policy, self._window = retry, policy, window
        self._records: list[Any] = []  # as taken from the producer (see flush)
        self._gathering: Any = None  # while a batch's frames are gathered (_send)
        # Now, before any message is built: a broker that is down fails the
        # dispatch at once, with the error Celery's first publish raises.
        with conn._reraise_as_library_errors():
            retrying(
                self._open_channel,
                self._recoverable,
                retry,
                policy,
                "connecting",
                on_error=self._drop_connection,
            )
        self.producer = DeferringProducer(producer, self)
        self.report = DispatchReport("amqp")

    # -- channel ----------------------------------------------------------

    def _open_channel(self) -> Any:
        # kombu's pooled producer closes its connection when a dispatch
        # raised (Producer.__exit__ -> pool.replace) and is handed out again
        # closed; Celery's publishes reconnect through ensure, so do we.
        self._connection.connect()
        if not self._limit_set:
            server = getattr(self._connection.connection, "server_properties", None) or {}
            self.max_message_size = default_max_message_size(server)
        self._channel = channel = confirm_channel(self._connection, self._on_ack, self._on_nack)
        self._acks.new_channel()
        self._declares.reset()
        # Same defaults as the pooled producer Celery would have used.
        self._sender = Producer(channel, **settings_of(self._template))
        return channel

    def _drop_connection(self, exc: BaseException | None = None) -> None:
        # The connection is gone: forget it without network I/O (as kombu's
        # ensure does) so the next channel() reconnects.
        del exc
        self._channel = None
        self._connection.collect()

    def close(self) -> None:
        if self._gathering is not None:
            self._gathering.stop()  # the close must go out, not be gathered
        channel, self._channel = self._channel, None
        if channel is None or channel.connection is None:
            return
        try:
            channel.close()
        except self._errors:
            # The connection died under us; the error that matters was raised.
            logger.debug("closing the confirm channel failed", exc_info=True)

    # -- confirms ---------------------------------------------------------

    @property
    def confirmed(self) -> int:
        return self._acks.confirmed

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._acks.settle(delivery_tag, multiple, nacked=False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._acks.settle(delivery_tag, multiple, nacked=True)

    def _announce(self, upto: int, skipped: frozenset[int] = frozenset()) -> None:
        """Send the held ``after_task_publish`` of the records before
        ``upto`` not sent yet, in dispatch order; ``skipped``'s are kept
        (not acked: ``resume()`` may send them)."""
        records = self._records
        send_held(
            self.notices,
            (records[i] for i in range(self._announced, upto) if i not in skipped),
        )
        self._announced = max(self._announced, upto)

    def _failed(self) -> PublishError:
        """The error for a channel or connection that failed: closed first,
        since the broker may still confirm messages while the channel
        closes (``keep_confirms_while_closing``), and only then the
        unconfirmed ones named."""
        self.close()
        return self._failure()

    def _failure(self) -> PublishError:
        # Unsettled messages already written, then every message from the
        # one being written on (never written, or its write failed).
        unsettled = self._acks.take_unsettled()
        self._announce(self._next, frozenset(unsettled))
        ids = [self._ids[i] for i in unsettled] + self._ids[self._next :]
        return PublishError(ids, self.confirmed, partial(self._resume, ids))

    def _resume(self, ids: list[str]) -> None:
        """Write the messages of ``ids`` again, confirmed, on a new channel."""
        wanted = set(ids)
        records = [r for r in self._records if r.task_id in wanted]
        if self.fast is not None:
            records = self.fast.records(records)
        with publish_confirmed(
            self._template, self._size, self._retry, self._policy, self.max_message_size,
            self._window, self.default_confirm_timeout,
        ) as batch:  # fmt: skip
            batch.producer.deferred.extend(records)
            batch.notices.update(self.notices)  # theirs, sent once acked

    # -- building ---------------------------------------------------------

    def check(self, record: Deferred, table_checked: bool = False) -> None:
        """Raise now what sending ``record`` would raise (``table_checked``:
        its properties are known to encode, ``publish/amqp_records.py``)."""
        if record.body_size > self.max_message_size:
            raise MessageTooLargeError(
                f"task {record.task_id}: message body of {record.body_size} bytes is over "
                f"the broker's max_message_size ({self.max_message_size} bytes; set "
                "turbogroup_max_message_size to the broker's own limit)"
            )
        # py-amqp encodes the properties only when it writes the frame, and
        # a value it cannot encode raises there: encode them now, unless
        # their types say they encode (publish/amqp_content.py).
        if not table_checked and not writes_for_certain(record.args):
            self._template.channel.prepare_message(*record.args[:6])._serialize_properties()
        if record.confirm_timeout is not None:
            self._confirm_timeout = max(self._confirm_timeout or 0, record.confirm_timeout)

    def published(self, task_id: str) -> None:
        del task_id  # messages are tracked as the producer records them

    # -- sending ----------------------------------------------------------

    def _write(self, record: Deferred) -> None:
        policy = record.retry_policy
        catch = retry_errors(self._recoverable, policy)
        retries = 0
        while True:
            try:
                if self._channel is None:
                    self._open_channel()
                lean, declared = self._declares.lean(record)
                replay(self._sender, lean)
                self._declares.remember(declared)
                break
            except self._errors as exc:
                # Only when nothing is unacknowledged can a rewrite not
                # duplicate (docs/ARCHITECTURE.md, "Retries on RabbitMQ").
                if not (
                    self._acks.settled
                    and isinstance(exc, catch)
                    and may_retry(record.retry, retries, policy)
                ):
                    raise self._failed() from exc
                wait = interval(retries, policy)
                logger.warning(
                    "broker connection lost publishing task %s (%r); retrying in %ss",
                    record.task_id,
                    exc,
                    wait,
                )
                self._drop_connection()
                time.sleep(wait)
                retries += 1
        self._acks.written(self._next)
        self._next += 1

    def _send(self, chunk: list[Deferred]) -> None:
        """Write a batch's messages, their frames gathered into a few
        system calls (``amqp_wire``)."""
        alone = 0
        if self._channel is None or self._acks.settled:
            # A write that fails with nothing unacknowledged is retried
            # (``_write``): the first one goes out on its own to find out,
            # as every write did before gathering.
            self._write(chunk[0])
            alone = 1
        with coalesced_writes(self._channel.connection) as gathering:
            self._gathering = gathering
            try:
                for record in chunk[alone:]:
                    if self._declares.may_declare(record):
                        gathering.flush()
                        with gathering.paused():
                            self._write(record)
                    else:
                        self._write(record)
                gathering.flush()
            except self._errors as exc:
                raise self._failed() from exc
            finally:
                self._gathering = None

    def _progress(self, total: int) -> None:
        if self.on_sent is not None and self.confirmed > self._reported:
            self._reported = self.confirmed
            self.on_sent(self.confirmed, total)

    def _drain(self, allowed: int = 0) -> None:
        """Read acks until at most ``allowed`` messages are unacknowledged
        (none once one was nacked: RabbitMQ confirms asynchronously, so a
        nack may come before earlier messages' acks, and a message it
        queued must not be reported unconfirmed)."""
        timeout = self._confirm_timeout or self.default_confirm_timeout
        failures: tuple[type[BaseException], ...] = (*self._errors, OperationalError)
        acks = self._acks
        try:
            while acks.outstanding > (0 if acks.nacked else allowed):
                connection = self._channel.connection if self._channel else None
                if connection is None:
                    raise OperationalError("confirm channel closed before every ack arrived")
                connection.drain_events(timeout=timeout)
        except failures as exc:
            raise self._failed() from exc
        if acks.nacked:
            raise self._failure()
        acks.compact()
        self._announce(acks.first_unconfirmed(self._next))

    def flush(self) -> None:
        """Write every built message, a batch at a time, with up to the
        window's batches unacknowledged; return once all are acked."""
        fast = self.fast
        if fast is not None:
            fast.check()  # the alike children added since the last check
        records = self._records = self.producer.take()
        self._ids = [record.task_id for record in records]
        report = self.report
        for start in range(0, len(records), self._size):
            # The window: earlier batches' acks are read as this one is
            # about to be written, up to the window's worth in flight.
            self._drain(self._in_flight)
            self._progress(len(records))
            chunk = records[start : start + self._size]
            if fast is not None:
                built = fast.records(chunk)
                ours = fast.built_here(chunk, built)
                report.by_engine += ours
                report.by_celery += len(chunk) - ours
                chunk = built
            else:
                report.by_celery += len(chunk)
            self._send(chunk)
        self._drain()
        self._progress(len(records))
        if fast is not None:
            report.fallbacks.update(fast.fallbacks)
        report.emit()


@contextmanager
def publish_confirmed(
    producer: Any,
    size: int = DEFAULT_BATCH_SIZE,
    retry: bool = True,
    retry_policy: dict[str, Any] | None = None,
    max_message_size: int | None = None,
    window: int = DEFAULT_CONFIRM_WINDOW,
    confirm_timeout: float | None = None,
) -> Iterator[ConfirmBatch]:
    batch = ConfirmBatch(producer, size, retry, retry_policy, max_message_size, window)
    batch.default_confirm_timeout = confirm_timeout or DEFAULT_CONFIRM_TIMEOUT
    try:
        yield batch  # a child that raised: nothing was written
        batch.flush()
    finally:
        batch.close()


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "ConfirmBatch",
    "publish_confirmed",
    "uses_pyamqp",
]

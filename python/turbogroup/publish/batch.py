"""Bulk publishing on every transport but RabbitMQ: build everything, then
send in batches, each retried per Celery's retry policy.

Phase one runs while the group's children are dispatched: each child's
message is built (``publish/deferred.py``; on Redis the fast path encodes it
in Rust) and kept; every ``size`` children the messages built so far are
sealed into a *step*. Nothing is sent, so a child that raises leaves the
broker untouched. Phase two, when the loop has finished, sends the steps in
order. On Redis a step of the fast path's messages alone is one MULTI/EXEC
transaction of multi-value LPUSHes that also sets a marker key saying it
landed, and consecutive such steps are pipelined on one connection,
``window`` of them written ahead of their replies (a slow link then costs a
round trip per window, not per step); a step holding messages Celery's
publish built goes alone, through kombu's ``Producer.batch()`` pipeline for
those. On transports kombu does not batch, message by message.

A step that fails with a connection error is sent again per the group's
``retry``/``retry_policy`` (over ``task_publish_retry``/
``task_publish_retry_policy``, as Celery merges them), from the first step
whose reply was not read; a fast-path step whose marker shows it landed is
not pushed again, so those are queued exactly once. (A step through kombu's
pipeline that broke mid-way may be queued twice when resent: at least
once, as with Celery's own retries.) When the retries run out,
:class:`~turbogroup.errors.PublishError` lists exactly the ids not
confirmed sent: the failed step's (those of a transport without batches
from the message that failed) and every later step's.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from operator import attrgetter
from typing import Any

from celery import signals
from kombu.exceptions import BatchPublishError
from kombu.utils.json import dumps as json_dumps

from turbogroup import _core
from turbogroup._compat import RedisChannel
from turbogroup.celery_guards import (
    celery_retries_each_callback_publish,
    fast_path_enabled,
)
from turbogroup.errors import PublishError
from turbogroup.publish.deferred import Deferred, DeferringProducer, replay
from turbogroup.publish.redis_wire import send_transactions
from turbogroup.publish.report import DispatchReport
from turbogroup.publish.retry import retrying
from turbogroup.publish.signals import Notice, hold_after_publish, send_held

DEFAULT_BATCH_SIZE = 1000
#: Steps written ahead of their replies on Redis (``turbogroup_confirm_window``).
DEFAULT_WINDOW = 8


def bulk_publish_allowed(app: Any, producer: Any) -> bool:
    """Deferred, batched publishing is observably equivalent to Celery
    unless Celery retries each callback publish on its own, and only while
    the app may take the fast path at all (``celery_guards``). With
    ``before_task_publish``/``after_task_publish`` receivers (a tracer's
    instrumentation) too: ``after_task_publish`` is held until the message
    is sent, or acked on RabbitMQ (``publish/signals.py``)."""
    del producer  # every transport's bulk publisher holds the signal
    if signals.task_sent.receivers:  # Celery's deprecated signal: its path
        return False
    if celery_retries_each_callback_publish():
        return False
    return fast_path_enabled(app)


def buffers_publishes(channel: Any) -> bool:
    """Whether kombu's ``Producer.batch()`` buffers on this channel (it
    publishes immediately where the transport has no batch support)."""
    return getattr(channel, "create_publish_batch", None) is not None and getattr(
        channel, "supports_batch_publish", True
    )


class Step:
    """Messages sent together: ``send(start)`` sends ``ids[start:]`` and
    returns how many of them are confirmed sent (all, unless it raises)."""

    def __init__(
        self,
        ids: Iterable[str],
        send: Callable[[int], None],
        per_message: bool,
        records: list[Any] | None = None,
        pipelined: Any = None,
    ) -> None:
        # Kept compactly until sent (16 bytes an id): a whole group's steps
        # are built before the first is sent. The fast path's column of a
        # step's ids is the step's own (``Batch.seal``).
        if type(ids) is _core.TaskIds:
            self.ids = ids
        else:
            self.ids = _core.TaskIds()
            self.ids.extend(ids)
        self.send = send
        # The fast path's FastSend when the step is its messages alone: then
        # it is pipelined with its neighbours (publish/redis_wire.py).
        self.pipelined = pipelined
        # The messages among them whose after_task_publish is held, in
        # order: Celery's publish's records, and the fast path's messages
        # sent between the publish signals (publish/signalled.py); each
        # one's held signal is sent once it is.
        self.records = records or []
        # Without batches each message is confirmed by its own publish
        # returning: progress is tracked message by message.
        self.per_message = per_message
        self.done = 0


class Batch:
    """The bulk publisher of one dispatch (see the module docstring).

    ``producer`` is what the children publish with; ``fast`` the transport's
    fast path, if any (it seals its own messages into steps).
    """

    def __init__(
        self,
        target: Any,
        size: int = DEFAULT_BATCH_SIZE,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.target = target
        self.window = window
        self.producer = DeferringProducer(target, self)
        self.fast: Any = None
        # on_sent(done, total): called as steps are sent (progress).
        self.on_sent: Any = None
        # () -> context manager giving a producer, for resume() (see there)
        self.reacquire: Callable[[], Any] | None = None
        self.steps: list[Step] = []
        self.confirmed = 0
        self._size = size
        self._children = 0
        self.retry = retry
        self.retry_policy = retry_policy or {}
        self._buffers = buffers_publishes(target.channel)
        self._json_envelope = isinstance(target.channel, RedisChannel)
        # Every message's place in dispatch order: the fast path's and the
        # records' are sent interleaved as the children came.
        self._seq = itertools.count()
        # A message's place in dispatch order (a C-level call: one a child)
        self.next_seq: Callable[[], int] = self._seq.__next__
        self._record_seqs: list[int] = []
        self._pinned: int | None = None
        self.report = DispatchReport(type(target.channel).__module__.rpartition(".")[2])
        # record id -> its held after_task_publish (publish/signals.py)
        self.notices: dict[int, Notice] = {}
        hold_after_publish()
        conn = target.connection
        self._errors = (*conn.connection_errors, BatchPublishError)

    def check(self, record: Deferred) -> None:
        """Raise now what sending ``record`` would raise later: on Redis the
        transport JSON-encodes headers and properties into its envelope."""
        if self._json_envelope:
            headers, properties = record.args[4], record.args[5]
            json_dumps(headers)
            json_dumps(properties)
        self._record_seqs.append(next(self._seq) if self._pinned is None else self._pinned)

    @contextmanager
    def pinned(self, seq: int) -> Iterator[None]:
        """Records made meanwhile take place ``seq`` (a child the fast path
        passes to Celery's publish when sealing keeps its place)."""
        self._pinned = seq
        try:
            yield
        finally:
            self._pinned = None

    def published(self, task_id: str) -> None:
        del task_id
        self.published_many(1)

    def published_many(self, count: int) -> None:
        """``count`` children queued, at most ``until_seal()``."""
        self._children += count
        if count and self._children % self._size == 0:
            self.seal()

    def until_seal(self) -> int:
        """How many more children make the current step full."""
        return self._size - self._children % self._size

    def seal(self) -> None:
        """Close the messages built so far into a step (the fast path's
        are sealed first: its fallbacks are recorded while it seals)."""
        sealed = self.fast.seal() if self.fast is not None else []
        records = self.producer.take()
        seqs, self._record_seqs = self._record_seqs, []
        self.report.by_engine += len(sealed)
        self.report.by_celery += len(records)
        # Dispatch order: those the fast path passed on while sealing were
        # recorded last, in their children's places.
        by_seq = sorted(zip(seqs, records), key=lambda pair: pair[0])
        if not sealed:
            if records:
                self._add_records([record for _, record in by_seq])
            return
        parts: list[_core.TaskIds] = []
        in_step: list[Any] = []
        sends: list[Callable[[], None]] = []
        for is_record, items in _interleaved(sealed, by_seq):
            ids = _core.TaskIds()
            ids.extend(map(_task_id, items))
            parts.append(ids)
            if is_record:
                in_step += items
                sends.append(partial(self._replay_all, items))
            else:
                if self.notices:  # messages sent between the publish signals
                    in_step += [item.message for item in items]
                sends.append(self.fast.sender(items, ids))
        step_ids = parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)

        def send(start: int) -> None:
            del start  # the step is resent whole
            for each in sends:
                each()

        alone = sends[0] if len(sends) == 1 and getattr(self.fast, "pipelines", False) else None
        step = Step(step_ids, send, per_message=False, records=in_step, pipelined=alone)
        self.steps.append(step)

    def _resume(self, steps: list[Step]) -> None:
        """Send ``steps`` (the failed one from where it stopped), on a
        producer of the app's pool: the dispatch's went back to the pool
        when the error was raised."""
        if self.reacquire is None:
            self._send_again(steps)
            return
        with self.reacquire() as producer:
            self.target = producer
            if self.fast is not None:
                self.fast.channel = producer.channel
            self._send_again(steps)

    def _send_again(self, steps: list[Step]) -> None:
        self.steps = steps
        self.confirmed = 0
        self.flush()

    def _replay_all(self, records: list[Deferred]) -> None:
        target = self.target
        # One pipeline where kombu batches; message by message elsewhere.
        sending = target.batch(max_size=len(records) * 16) if self._buffers else nullcontext()
        with sending:
            for record in records:
                replay(target, record)

    def _add_records(self, records: list[Deferred]) -> None:
        if self._buffers:

            def send(start: int) -> None:
                del start  # one pipeline: resent whole
                self._replay_all(records)

            ids = [r.task_id for r in records]
            self.steps.append(Step(ids, send, per_message=False, records=records))
            return
        step: Step

        def send_each(start: int) -> None:
            for record in records[start:]:
                replay(self.target, record)  # read now: resume() may change it
                step.done += 1

        step = Step([r.task_id for r in records], send_each, per_message=True, records=records)
        self.steps.append(step)

    def _announce(self, records: list[Deferred]) -> None:
        """Send the held ``after_task_publish`` of these sent records."""
        send_held(self.notices, records)

    def flush(self) -> None:
        """Seal what is left and send every step: consecutive steps of the
        fast path's messages alone pipelined, ``window`` in flight."""
        self.seal()
        steps, self.steps = self.steps, []
        total = self.confirmed + sum(len(step.ids) for step in steps)
        k = 0
        while k < len(steps):
            run = [steps[k]]
            if steps[k].pipelined is not None and self.window > 1:
                while k + len(run) < len(steps) and steps[k + len(run)].pipelined is not None:
                    run.append(steps[k + len(run)])
            self._send_run(steps, k, run, total)
            k += len(run)
        if self.fast is not None:
            self.report.fallbacks.update(self.fast.fallbacks)
        self.report.emit()

    def _send_run(self, steps: list[Step], k: int, run: list[Step], total: int) -> None:
        """Send ``run`` (``steps[k:k + len(run)]``): one step, or steps to
        pipeline. Each is confirmed once its reply is read; on an error
        that outlives the retries, PublishError lists the first
        unconfirmed step's ids and every later step's."""
        applied = 0  # of the run's steps, how many are confirmed

        def confirm_next() -> None:
            nonlocal applied
            step = run[applied]
            applied += 1
            self.confirmed += len(step.ids)
            self._announce(step.records)
            if self.on_sent is not None:
                self.on_sent(self.confirmed, total)

        def attempt() -> None:
            rest = run[applied:]
            if len(run) == 1:
                step = rest[0]
                step.send(step.done if step.per_message else 0)
                confirm_next()
                return
            transactions = (step.pipelined.transaction() for step in rest)
            send_transactions(self.fast.channel, transactions, self.window, confirm_next)

        try:
            retrying(attempt, self._errors, self.retry, self.retry_policy, "publishing a batch")
        except Exception as exc:
            if applied >= len(run):
                raise  # every step confirmed: a progress callback raised
            step = run[applied]
            confirmed = step.done if step.per_message else 0
            self._announce(step.records[:confirmed])
            failed = k + applied
            later = [i for s in steps[failed + 1 :] for i in s.ids]
            unconfirmed = step.ids.tolist()[confirmed:] + later
            resume = partial(self._resume, steps[failed:])
            raise PublishError(unconfirmed, self.confirmed + confirmed, resume) from exc


_task_id = attrgetter("task_id")  # a sealed message's, or a record's


def _interleaved(sealed: list[Any], by_seq: list[tuple[int, Deferred]]) -> Iterator[Any]:
    """``(is_record, items)`` runs in dispatch order: alternating slices of
    the fast path's sealed messages and of recorded ones (by sequence)."""
    if not by_seq:  # the usual step: the fast path's messages alone
        yield False, sealed
        return
    merged = heapq.merge(((m.seq, m) for m in sealed), by_seq, key=lambda pair: pair[0])
    for is_record, run in itertools.groupby(
        (item for _, item in merged), key=lambda item: isinstance(item, Deferred)
    ):
        yield is_record, list(run)


@contextmanager
def publish_batch(
    producer: Any,
    size: int = DEFAULT_BATCH_SIZE,
    retry: bool = True,
    retry_policy: dict[str, Any] | None = None,
    reacquire: Callable[[], Any] | None = None,
    window: int = DEFAULT_WINDOW,
) -> Iterator[Batch]:
    batch = Batch(producer, size, retry, retry_policy, window)
    batch.reacquire = reacquire
    yield batch  # a child that raised: nothing was sent, nothing to undo
    batch.flush()


__all__ = ["DEFAULT_BATCH_SIZE", "Batch", "Step", "bulk_publish_allowed", "publish_batch"]

"""Fast dispatch on the Redis transport: messages encoded in Rust, pushed
with multi-value LPUSHes, one round trip per batch.

For each child the options are resolved exactly as Celery 5.7.0 resolves
them on its way to the broker -- ``Signature.apply_async`` (merge),
``Task.apply_async`` (typing check, shadow, exec options), ``send_task``
(router, expiry, parent ids), ``as_task_v2`` (eta, reprs, root id),
``send_task_message`` (queue, exchange, delivery mode) and kombu's
``Producer.publish`` (properties) -- and the message bytes come from
``_core.encode_task_messages``, which is tested against what Celery itself
LPUSHes. The merge is Celery's own ``Signature._merge``; the rest is
``publish/resolve.py``.

A child takes Celery's own path (``sig.apply_async``) whenever anything is
outside what this reproduces byte for byte: chains, chords and groups as
children, tasks whose class overrides ``apply_async``, unregistered task
names, non-JSON serializers, compression, explicit exchanges (which kombu
routes through its binding table), connection/producer overrides, and any
value the encoder reports as unsupported.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from functools import partial
from itertools import repeat
from typing import Any, cast

from celery import Signature

from turbogroup import _core
from turbogroup._compat import RedisChannel
from turbogroup.celery_guards import publishing_wrappers
from turbogroup.ids import uuid
from turbogroup.publish.alike import (
    OWN,
    AlikeChild,
    AlikeKeys,
    fast_path_allowed,
    new_tuple,
    repr_limits,
)
from turbogroup.publish.builder import MessageBuilder
from turbogroup.publish.redis_encode import checked, envelopes, lpush_commands
from turbogroup.publish.redis_runs import (
    MESSAGE,
    QUEUE,
    SEALED_KEY,
    SEALED_MESSAGE,
    SEQ,
    TASK_ID,
    Message,
    Run,
    Sealed,
    alike_columns,
    alike_headers,
    is_own_message,
    message_priority,
    one_template,
)
from turbogroup.publish.redis_wire import Transaction, send_commands, step_landed
from turbogroup.publish.resolve import Clock, MessageResolver
from turbogroup.publish.signalled import CeleryMessage, SignalledMessages
from turbogroup.publish.signals import publish_receivers
from turbogroup.publish.wrapped import WrappedPublishing

logger = logging.getLogger("turbogroup.publish.redis")


class FastSend:
    """One step's fast-path messages: calling it sends them (a round trip
    of their own); ``transaction()`` gives them to be pipelined with other
    steps' (``publish/batch.py``). Either way, a second attempt pushes
    nothing if the first one landed."""

    __slots__ = ("_attempts", "_dispatch", "_marker", "_prepared")

    def __init__(self, dispatch: RedisFastDispatch, prepared: Any, marker: str) -> None:
        self._dispatch, self._prepared, self._marker = dispatch, prepared, marker
        self._attempts = 0

    def __call__(self) -> None:
        self._attempts += 1
        self._dispatch._push(self._prepared, self._marker, self._attempts > 1)

    def transaction(self) -> Transaction:
        self._attempts += 1
        return self._dispatch._transaction(self._prepared, self._marker, self._attempts > 1)


class RedisFastDispatch:
    """Builds the messages of one group dispatch and pushes them in batches."""

    #: Whether its steps can be pipelined (``FastSend.transaction``).
    pipelines = True

    def __init__(
        self,
        app: Any,
        producer: Any,
        channel: RedisChannel,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.producer = producer
        self.channel = channel
        receivers = publish_receivers()
        # A tracer's wrappers of Celery's publishing methods run around each
        # message (publish/wrapped.py), unless signals have receivers too.
        wrappers = None if receivers else publishing_wrappers(app)
        self.enabled = fast_path_allowed(app, producer, wrapped=wrappers is not None)
        self.limits = repr_limits(app)
        self.resolver = MessageResolver(app, producer, channel, retry, retry_policy)
        # With publish signal receivers, each message goes between them.
        self.signalled = SignalledMessages(app, producer, self.limits) if receivers else None
        # Whether each child is published on its own, in order (between the
        # signals, or inside the wrappers), not queued by the Rust loop
        self.one_by_one = receivers or wrappers is not None
        # A chain member's first message is alike others but for the rest
        # of its chain, which the encoder fills in (not one by one).
        self.alike_chains = not self.one_by_one
        # Each child's clock fields too, but not one by one: their
        # properties are the template's (publish/signalled.py).
        keys = AlikeKeys(
            app.amqp.router,
            OWN if self.alike_chains else frozenset(),
            clocked=not self.one_by_one,
        )
        self.builder = MessageBuilder(self.resolver, keys, producer, self.enabled)
        self.wrapped = (
            WrappedPublishing(self.builder, wrappers, self.limits, self._queue_wrapped)
            if wrappers is not None
            else None
        )
        # (task id, queue, message, Celery's publish of it or None for an
        # alike child, which knows its own, sequence number)
        self.pending: list[tuple[str, str, Message, Callable[[], Any] | None, int]] = []
        # The bulk publisher numbers every message, ours and those Celery's
        # publish records, so that they are sent in dispatch order.
        self.sequence: Callable[[], int] = producer.owner.next_seq
        self.pinned: Callable[[int], Any] = producer.owner.pinned
        # the encoder's reasons for the children it passed to Celery
        self.fallbacks: Counter[str] = Counter()
        # Steps sent so far, and the dispatch's tag, naming each step's
        # landed marker (see _push).
        self._steps = 0
        self._tag = uuid()

    def add(
        self,
        sig: Signature,
        chord: Any,
        args: Any,
        kwargs: Any,
        options: dict[str, Any],
        fallback: Callable[[], Any],
    ) -> bool:
        """Queue ``sig``'s message if this path can build it exactly; False
        means the caller must publish it through Celery."""
        built = self.builder.build(sig, chord, args, kwargs, options)
        if built is None:
            return False
        if self.signalled is not None:
            return self._signalled(*built)
        task_id, qname, message = built
        # The first of its kind is its kind's template, and is encoded as an
        # alike child of it: the step is then one run (one LPUSH, one
        # encoder call), not a whole message beside it.
        child = self.builder.own_child(task_id, message)
        if child is not None:
            message = child
        if self.wrapped is not None:
            if not isinstance(message, AlikeChild):
                return False  # its wrappers run around Celery's publish
            self.wrapped.publish(qname, message)
            return True
        self.pending.append((task_id, qname, message, fallback, self.sequence()))
        return True

    @property
    def last_alike(self) -> tuple[str, dict[str, Any]] | None:
        """(queue, template) of the last child added, when its message is
        the same as any other child's with the same task and options but
        for ids and arguments (see add_alike)."""
        return self.builder.last_alike

    @property
    def last_clock(self) -> Clock | None:
        """What the last child added reads the clock for, if anything."""
        return self.builder.last_clock

    def add_alike(self, qname: str, child: AlikeChild) -> None:
        """Queue a child whose message is ``child.template`` (a
        ``last_alike``) but for its id, index and arguments, already
        checked by the caller as ``_build`` checks them."""
        if self.wrapped is not None:
            self.wrapped.publish(qname, child)
        elif self.signalled is None:
            self.pending.append((child.task_id, qname, child, None, self.sequence()))
        elif not self._signalled(child.task_id, qname, child):
            child.through_celery()

    def _queue_wrapped(self, qname: str, child: AlikeChild, publish: Callable[[], None]) -> None:
        # a child published inside a tracer's wrappers (publish/wrapped.py),
        # for the encoder; kombu's publish only if it cannot write it
        del publish  # its arguments are made again then, not kept
        assert self.wrapped is not None
        fallback = partial(self.wrapped.through_kombu, child)
        self.pending.append((child.task_id, qname, child, fallback, self.sequence()))

    def _signalled(self, task_id: str, qname: str, message: Message) -> bool:
        """Send a message between the publish signals
        (``publish/signalled.py``); False when Celery must publish it."""
        assert self.signalled is not None
        built = self.builder.built(task_id, message)

        def queue(final: Any, arguments: CeleryMessage, through_kombu: Callable[[], Any]) -> Any:
            del arguments  # the encoder writes final
            self.pending.append((task_id, qname, final, through_kombu, self.sequence()))
            return final

        return self.signalled.publish(built, queue)

    def seal(self) -> list[Sealed]:
        """Encode what is queued, to check it, and return what this path
        sends, in dispatch order. A message the encoder cannot render
        exactly is published through Celery instead, into the dispatch's
        deferring producer, in its child's place in the order.

        The bytes are not kept: ``sender`` encodes the messages again. Keeping
        a whole group's bytes until everything is checked would cost ~1 KiB
        per task (1 GiB for a million), while a message that is alike
        another is kept as its ids and arguments only.
        """
        if not self.pending:
            return []
        pending, self.pending = self.pending, []
        messages = list(map(MESSAGE, pending))
        encoded = self._check(messages)
        if encoded is None and len(set(map(QUEUE, pending))) == 1:
            # the usual step: one queue and template, all encodable (C-level
            # loops: a Python one per message cost a tenth of a dispatch)
            key = self._list_key(QUEUE(pending[0]), messages[0], {})
            seqs, ids = map(SEQ, pending), map(TASK_ID, pending)
            fields = zip(seqs, ids, repeat(key), messages, repeat(None))
            return list(map(new_tuple, repeat(Sealed), fields))
        if encoded is None:
            encoded = [None] * len(pending)
        sealed: list[Sealed] = []
        keys: dict[tuple[str, Any], str] = {}
        for (task_id, queue, message, fallback, seq), data in zip(pending, encoded):
            if isinstance(data, _core.Unsupported):
                logger.debug("task %s published by Celery: %s", task_id, data.reason)
                self.fallbacks[data.reason] += 1
                with self.pinned(seq):
                    (fallback or cast(AlikeChild, message).through_celery)()
                continue
            key = self._list_key(queue, message, keys)
            sealed.append(Sealed(seq, task_id, key, message, data))
        return sealed

    def sender(self, sealed: list[Sealed], ids: _core.TaskIds) -> FastSend:
        """What sends these sealed messages, in order: runs of one list key
        and one template, an alike message kept as its (id, index, args,
        kwargs) only; ``ids`` are the messages' (a run of them all keeps
        them as its column)."""
        messages = list(map(SEALED_MESSAGE, sealed))
        template = one_template(messages)
        lone = cast(AlikeChild, messages[0]) if len(messages) == 1 else None
        if template is not None and lone is not None and is_own_message(lone):
            # a template's own message alone (a group of one): written
            # whole, cheaper than laying out an envelope for many
            return self._fast_send([Run(sealed[0].key, None, [template])])
        if template is not None and len(set(map(SEALED_KEY, sealed))) == 1:
            # one LPUSH of one template's messages: the usual step
            columns = alike_columns(messages, ids)
            headers = self._headers(messages)
            return self._fast_send([Run(sealed[0].key, template, columns, headers)])
        runs: list[Run] = []
        for _, _, key, message, encoded in sealed:
            entry: Any
            if isinstance(message, AlikeChild):
                template, entry = message.template, message
            else:
                template, entry = None, message if encoded is None else encoded
            if not runs or runs[-1].key != key or runs[-1].template is not template:
                runs.append(Run(key, template, []))
            runs[-1].messages.append(entry)
        runs = [run if run.template is None else
                Run(run.key, run.template, alike_columns(run.messages), self._headers(run.messages))
                for run in runs]  # fmt: skip
        return self._fast_send(runs)

    def _headers(self, children: list[AlikeChild]) -> list[Any] | None:
        # only messages sent one by one have their own
        return alike_headers(children) if self.one_by_one else None

    def _fast_send(self, runs: list[Run]) -> FastSend:
        self._steps += 1
        return FastSend(self, self._prepare(runs), f"turbogroup.sent.{self._tag}.{self._steps}")

    def _list_key(self, queue: str, message: Message, keys: dict[tuple[str, Any], str]) -> str:
        """The list kombu pushes ``message`` to, by kombu's own rules (the
        channel's priority steps and ``sep``); ``keys`` caches them for one
        seal."""
        raw = message_priority(message)
        key = keys.get((queue, raw))
        if key is None:
            channel = self.channel
            priority = channel._get_message_priority({"properties": {"priority": raw}})
            key = keys[queue, raw] = channel._q_for_pri(queue, priority)
        return key

    def _prepare(self, runs: list[Run]) -> Any:
        """What ``_push`` sends for a sealed step. On Redis the runs
        themselves: their bytes are built only when sent."""
        return runs

    def _transaction(self, runs: list[Run], marker: str, again: bool) -> Transaction:
        """``_push``'s transaction, to be pipelined with others' (None when
        sent ``again`` and its marker says it landed)."""
        key = self.channel.global_keyprefix + marker
        if again and step_landed(self.channel, key):
            return None
        return self._lpush_commands(runs), key

    def _push(self, runs: list[Run], marker: str, again: bool) -> None:
        """One transaction: the step's LPUSHes and a marker key saying it
        landed. Sent ``again`` (a retry, a resume), a step whose marker is
        there is not pushed twice: exactly once, even when the connection
        died after Redis applied the step but before its reply came."""
        transaction = self._transaction(runs, marker, again)
        if transaction is not None:
            commands, key = transaction
            send_commands(self.channel, commands, landed=key)

    def _lpush_commands(self, runs: list[Run]) -> list[bytes]:
        # kombu's client prefixes LPUSH keys with the global_keyprefix
        # transport option; these bytes bypass it, so they carry it here.
        return lpush_commands(runs, self.channel.global_keyprefix, self.limits)

    def _envelopes(self, run: Run) -> list[bytes]:
        return envelopes(run, self.limits)

    def _check(self, messages: list[Message]) -> list[Any] | None:
        # a whole message sent one by one keeps its envelope
        return checked(messages, self.limits, one_by_one=self.one_by_one)

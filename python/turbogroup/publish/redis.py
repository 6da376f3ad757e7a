"""Fast dispatch on the Redis transport: messages encoded in Rust, pushed
with multi-value LPUSHes, one round trip per batch.

For each child the options are resolved exactly as Celery 5.7.0 resolves
them on its way to the broker -- ``Signature.apply_async`` (merge),
``Task.apply_async`` (typing check, shadow, exec options), ``send_task``
(router, expiry, parent ids), ``as_task_v2`` (eta, reprs, root id),
``send_task_message`` (queue, exchange, delivery mode) and kombu's
``Producer.publish`` (properties) -- and the message bytes come from
``_core.encode_task_messages``, which is tested against what Celery itself
LPUSHes. Celery's own functions are called where they are cheap (merge,
router, shadow name) so that their behaviour is reused, not copied.

A child takes Celery's own path (``sig.apply_async``) whenever anything is
outside what this reproduces byte for byte: chains, chords and groups as
children, tasks whose class overrides ``apply_async``, unregistered task
names, non-JSON serializers, compression, explicit exchanges (which kombu
routes through its binding table), connection/producer overrides, and any
value the encoder reports as unsupported.
"""

from __future__ import annotations

import logging
import numbers
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, cast

from celery import Signature
from celery.app.task import Task
from celery.utils.functional import maybe_list
from celery.utils.nodenames import anon_nodename
from celery.utils.time import add_seconds_to_datetime, maybe_make_aware, subtract_datetimes
from dateutil.parser import isoparse

from turbogroup import _core
from turbogroup._compat import RedisChannel
from turbogroup.ids import uuid
from turbogroup.publish.alike import (
    AlikeKeys,
    by_template,
    celery_publishing_task,
    fast_path_allowed,
    repr_limits,
)
from turbogroup.publish.redis_wire import send_commands, step_landed

logger = logging.getLogger("turbogroup.publish.redis")

# send_task_message's and kombu Producer.publish's named parameters.
PUBLISH_PARAMS = frozenset({
    "exchange", "routing_key", "queue", "event_dispatcher", "retry", "retry_policy",
    "serializer", "delivery_mode", "compression", "declare", "headers", "exchange_type",
    "timeout", "confirm_timeout", "mandatory", "immediate", "priority", "content_type",
    "content_encoding", "expiration",
})  # fmt: skip
# Options this path does not reproduce: Celery handles those children.
UNSUPPORTED_OPTIONS = frozenset({"connection", "publisher", "router", "now", "timezone"})


class Alike(NamedTuple):
    """A message equal to ``template`` but for its ids and arguments."""

    template: dict[str, Any]
    task_id: str
    group_index: int | None
    args: Any
    kwargs: Any


Message = dict[str, Any] | Alike


class Sealed(NamedTuple):
    """A checked message of this path, with its place in dispatch order."""

    seq: int
    task_id: str
    key: str
    message: Message


class Run(NamedTuple):
    """Messages pushed by one LPUSH, in order: with a ``template``, each is
    an alike message's ``(task_id, group_index, args, kwargs)``; without,
    a whole message dict."""

    key: str
    template: dict[str, Any] | None
    messages: list[Any]


def _priority(message: Message) -> Any:
    return (message.template if isinstance(message, Alike) else message)["priority"]


class RedisFastDispatch:
    """Builds the messages of one group dispatch and pushes them in batches."""

    def __init__(
        self,
        app: Any,
        producer: Any,
        channel: RedisChannel,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
    ) -> None:
        self.app = app
        self.retry = retry
        self.retry_policy = retry_policy or {}
        self.producer = producer
        self.channel = channel
        conf = app.conf
        amqp = app.amqp
        self.enabled = fast_path_allowed(app, producer)
        self.queues = amqp.queues
        self.router = amqp.router
        self.default_queue = amqp.default_queue
        self.default_serializer = conf.task_serializer
        self.default_delivery_mode = conf.task_default_delivery_mode
        self.limits = repr_limits(app)
        self.thread_oid = app.thread_oid
        self.origin = anon_nodename()
        self.inherit_priority = conf.task_inherit_parent_priority
        self.parent = app.current_worker_task
        self.declared: set[int] = set()
        # (queue, template) of the last child added, when its message is
        # the same as any other child's with the same task and options but
        # for ids and arguments (see add_alike).
        self.last_alike: tuple[str, dict[str, Any]] | None = None
        # memo key -> (queue, message without ids and arguments, the options)
        self._memo: dict[tuple[Any, ...], tuple[str, dict[str, Any], dict[str, Any]]] = {}
        self._keys = AlikeKeys(self.router)
        # (task id, queue, message, how to publish it through Celery instead,
        # its place in the dispatch's order)
        self.pending: list[tuple[str, str, Message, Callable[[], Any], int]] = []
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
        self.last_alike = None
        task = celery_publishing_task(self.app, sig) if self.enabled else None
        if task is None:
            return False
        built = self._build(sig, task, chord, args, kwargs, options)
        if built is None:
            return False
        self.pending.append((*built, fallback, self.sequence()))
        return True

    def _build(
        self, sig: Signature, task: Task, chord: Any, args: Any, kwargs: Any, options: dict
    ) -> tuple[str, str, Message] | None:
        # Signature.apply_async: None options are dismissed, then merged.
        call = {"producer": self.producer, "add_to_parent": False, "chord": chord, **options}
        opts = {k: v for k, v in call.items() if v is not None}
        args, kwargs, opts = sig._merge(args or (), kwargs or {}, opts)
        key = self._keys.key(task, opts)
        if key is None:
            return self._resolve(task, args, kwargs, dict(opts))
        memo = self._memo.get(key)
        if memo is None:
            built = self._resolve(task, args, kwargs, dict(opts))
            if built is not None:
                # the key's objects are kept alive with it: their ids stay theirs
                self._memo[key] = (built[1], built[2], opts)
                self.last_alike = (built[1], built[2])
            return built
        # The same task and options as an earlier child but for its ids and
        # arguments: what Celery resolves from them is resolved already.
        if task.typing:
            check_arguments = getattr(task, "__header__", None)
            if check_arguments is not None:
                check_arguments(*(args or ()), **(kwargs or {}))
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            return None  # Celery raises TypeError: let it
        qname, template, _ = memo
        self.last_alike = (qname, template)
        task_id = opts["task_id"]
        return task_id, qname, Alike(template, task_id, opts.get("group_index"), args, kwargs)

    def add_alike(
        self,
        qname: str,
        template: dict[str, Any],
        task_id: str,
        group_index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        fallback: Callable[[], Any],
    ) -> None:
        """Queue a child whose message is ``template`` (a ``last_alike``)
        but for its id, index and arguments, already checked by the caller
        as ``_build`` checks them."""
        self.pending.append(
            (
                task_id,
                qname,
                Alike(template, task_id, group_index, args, kwargs),
                fallback,
                self.sequence(),
            )
        )

    def _resolve(
        self, task: Task, args: Any, kwargs: Any, opts: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]] | None:
        if UNSUPPORTED_OPTIONS.intersection(opts):
            return None
        # Task.apply_async
        if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
            return None  # Celery raises ValueError: let it
        if task.typing:
            check_arguments = getattr(task, "__header__", None)
            if check_arguments is not None:
                check_arguments(*(args or ()), **(kwargs or {}))
        task_id = opts.pop("task_id", None)
        opts.pop("producer", None)
        link, link_error = opts.pop("link", None), opts.pop("link_error", None)
        shadow = opts.pop("shadow", None) or task.shadow_name(args, kwargs, opts)
        opts = dict(task._get_exec_options(), **opts)
        opts.setdefault("ignore_result", task.ignore_result)
        if (opts.get("serializer") or self.default_serializer) != "json":
            return None
        if opts.get("compression"):
            return None
        # send_task
        if task_id is None:
            return None  # a group's children are frozen; anything else: Celery
        countdown, eta = opts.pop("countdown", None), opts.pop("eta", None)
        expires = opts.pop("expires", None)
        group_id, group_index = opts.pop("group_id", None), opts.pop("group_index", None)
        retries, chord_opt = opts.pop("retries", 0), opts.pop("chord", None)
        reply_to = opts.pop("reply_to", None)
        time_limit = opts.pop("time_limit", None)
        soft_time_limit = opts.pop("soft_time_limit", None)
        root_id, parent_id = opts.pop("root_id", None), opts.pop("parent_id", None)
        route_name, chain = opts.pop("route_name", None), opts.pop("chain", None)
        replaced_task_nesting = opts.pop("replaced_task_nesting", 0)
        for name in ("add_to_parent", "result_cls", "task_type"):
            opts.pop(name, None)
        ignore_result = opts.pop("ignore_result", None)
        opts = self.router.route(opts, route_name or task.name, args, kwargs, task)
        expiration = None
        if expires is not None:
            if isinstance(expires, datetime):
                expires_s = subtract_datetimes(expires, self.app.now()).total_seconds()
            elif isinstance(expires, str):
                expires_s = subtract_datetimes(isoparse(expires), self.app.now()).total_seconds()
            else:
                expires_s = expires
            if expires_s < 0:
                return None  # Celery logs a warning first: let it
            opts["expiration"] = expires_s
        parent = self.parent
        if parent and (not root_id or not parent_id):
            if not root_id:
                root_id = parent.request.root_id or parent.request.id
            if not parent_id:
                parent_id = parent.request.id
            if self.inherit_priority:
                opts.setdefault("priority", parent.request.delivery_info.get("priority"))
        # as_task_v2 (which reads the clock again, as Celery does)
        now = None
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            return None  # Celery raises TypeError: let it
        if countdown:
            now = now or self.app.now()
            eta = maybe_make_aware(add_seconds_to_datetime(now, countdown), tz=self.app.timezone)
        if isinstance(expires, numbers.Real):
            now = now or self.app.now()
            expires = maybe_make_aware(add_seconds_to_datetime(now, expires), tz=self.app.timezone)
        if not isinstance(eta, str):
            eta = eta and eta.isoformat()
        if not isinstance(expires, str):
            expires = expires and expires.isoformat()
        stamped_headers = opts.pop("stamped_headers", None)
        stamps = {header: opts.pop(header) for header in stamped_headers or []}
        # send_task_message
        queue = opts.pop("queue", None)
        exchange = opts.pop("exchange", None)
        routing_key = opts.pop("routing_key", None)
        exchange_type = opts.pop("exchange_type", None)
        delivery_mode = opts.pop("delivery_mode", None)
        headers = opts.pop("headers", None)
        if queue is None and exchange is None:
            queue = self.default_queue
        qname = queue
        if queue is not None:
            if isinstance(queue, str):
                qname, queue = queue, self.queues[queue]
            else:
                qname = queue.name
        if delivery_mode is None:
            delivery_mode = getattr(getattr(queue, "exchange", None), "delivery_mode", None)
            delivery_mode = delivery_mode or self.default_delivery_mode
        if exchange_type is None:
            exchange_type = getattr(getattr(queue, "exchange", None), "type", None) or "direct"
        if not ((not exchange or not routing_key) and exchange_type == "direct"):
            return None  # routed through an exchange's bindings: kombu does that
        exchange, routing_key = "", qname
        if qname in (getattr(self.channel, "_expires", None) or ()):
            return None  # kombu also refreshes the queue's expiry: let it
        self._declare(queue)
        priority = opts.pop("priority", None)
        expiration_s = opts.pop("expiration", None)
        if expiration_s is not None:
            expiration = str(int(expiration_s * 1000))
        for name in PUBLISH_PARAMS:
            opts.pop(name, None)
        message = {
            "task_id": task_id,
            "name": task.name,
            "args": args,
            "kwargs": kwargs,
            "shadow": shadow,
            "eta": eta,
            "expires": expires,
            "group_id": group_id,
            "group_index": group_index,
            "retries": retries,
            "time_limit": time_limit,
            "soft_time_limit": soft_time_limit,
            "root_id": root_id,
            "parent_id": parent_id,
            "argsrepr": opts.get("argsrepr"),
            "kwargsrepr": opts.get("kwargsrepr"),
            "origin": opts.get("origin") or self.origin,
            "ignore_result": ignore_result,
            "replaced_task_nesting": replaced_task_nesting,
            "stamped_headers": stamped_headers,
            "stamps": stamps,
            "headers": headers,
            "callbacks": maybe_list(link),
            "errbacks": maybe_list(link_error),
            "chain": chain,
            "chord": chord_opt,
            "reply_to": reply_to or self.thread_oid,
            # What is left is what Celery and kombu put in the properties.
            "properties": opts,
            "delivery_mode": delivery_mode,
            "expiration": expiration,
            "priority": priority or 0,
            "exchange": exchange,
            "routing_key": routing_key,
        }
        return task_id, qname, message

    def _declare(self, queue: Any) -> None:
        # Celery declares the queue with every message; kombu caches it, so
        # declaring once per dispatch sends exactly what Celery sends.
        if queue is not None and id(queue) not in self.declared:
            # As Celery's publish does: retried per the policy, a broker
            # error surfacing as kombu's OperationalError.
            with self.producer.connection._reraise_as_library_errors():
                self.producer.maybe_declare(queue, retry=self.retry, **self.retry_policy)
            self.declared.add(id(queue))

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
        encoded = self._check([message for _, _, message, _, _ in pending])
        sealed: list[Sealed] = []
        keys: dict[tuple[str, Any], str] = {}
        for (task_id, queue, message, fallback, seq), data in zip(pending, encoded):
            if data is not None:
                logger.debug("task %s published by Celery: %s", task_id, data.reason)
                self.fallbacks[data.reason] += 1
                with self.pinned(seq):
                    fallback()
                continue
            sealed.append(Sealed(seq, task_id, self._list_key(queue, message, keys), message))
        return sealed

    def sender(self, sealed: list[Sealed]) -> Callable[[], None]:
        """What sends these sealed messages, in order: runs of one list key
        and one template, an alike message kept as its (id, index, args,
        kwargs) only."""
        runs: list[Run] = []
        for _, _, key, message in sealed:
            entry: Any
            if isinstance(message, Alike):
                template, entry = message.template, message[1:]
            else:
                template, entry = None, message
            if not runs or runs[-1].key != key or runs[-1].template is not template:
                runs.append(Run(key, template, []))
            runs[-1].messages.append(entry)
        prepared = self._prepare(runs)
        self._steps += 1
        marker = f"turbogroup.sent.{self._tag}.{self._steps}"
        attempts = 0

        def send() -> None:
            nonlocal attempts
            attempts += 1
            self._push(prepared, marker, attempts > 1)

        return send

    def _list_key(self, queue: str, message: Message, keys: dict[tuple[str, Any], str]) -> str:
        """The list kombu pushes ``message`` to, by kombu's own rules (the
        channel's priority steps and ``sep``); ``keys`` caches them for one
        seal."""
        raw = _priority(message)
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

    def _push(self, runs: list[Run], marker: str, again: bool) -> None:
        """One transaction: the step's LPUSHes and a marker key saying it
        landed. Sent ``again`` (a retry, a resume), a step whose marker is
        there is not pushed twice: exactly once, even when the connection
        died after Redis applied the step but before its reply came."""
        key = self.channel.global_keyprefix + marker
        if again and step_landed(self.channel, key):
            return
        send_commands(self.channel, self._lpush_commands(runs), landed=key)

    def _lpush_commands(self, runs: list[Run]) -> list[bytes]:
        """A step's LPUSHes, one per run, as Redis protocol bytes; the
        messages are encoded again (they were checked when sealed)."""
        # kombu's client prefixes LPUSH keys with the global_keyprefix
        # transport option; these bytes bypass it, so they carry it here.
        prefix = self.channel.global_keyprefix
        commands = []
        for key, template, messages in runs:
            key = prefix + key
            if template is not None:
                commands.append(_core.lpush_alike_command(key, template, messages, **self.limits))
                continue
            commands.append(_core.lpush_command(key, self._envelopes(None, messages)))
        return commands

    def _envelopes(self, template: dict[str, Any] | None, messages: list[Any]) -> list[bytes]:
        """A run's envelopes, encoded again (they were checked when sealed,
        so one that no longer encodes is an error)."""
        if template is not None:
            values = _core.encode_alike_messages(template, messages, **self.limits)
        else:
            values = _core.encode_task_messages(messages, **self.limits)
        for value in values:
            if isinstance(value, _core.Unsupported):
                raise RuntimeError(f"message no longer encodable: {value.reason}")
        return values

    def _check(self, messages: list[Message]) -> list[Any]:
        """None, or ``Unsupported``, per message: alike messages are encoded
        together, per template, and no bytes are kept."""
        out: list[Any] = [None] * len(messages)
        templates = [m.template if isinstance(m, Alike) else None for m in messages]
        whole = [i for i, template in enumerate(templates) if template is None]
        if whole:
            wholes = [cast(dict[str, Any], messages[i]) for i in whole]
            for i, data in zip(whole, _core.encode_task_messages(wholes, **self.limits)):
                out[i] = data if isinstance(data, _core.Unsupported) else None
        for template, positions in by_template(templates):
            items = [cast(Alike, messages[i])[1:] for i in positions]
            checked = _core.encode_alike_messages(template, items, check=True, **self.limits)
            if checked.count(None) == len(checked):
                continue  # the usual case: all encodable, out is all None
            for i, verdict in zip(positions, checked):
                out[i] = verdict
        return out

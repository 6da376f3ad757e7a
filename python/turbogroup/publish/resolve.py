"""A group child's options resolved into the message dict
``_core.encode_task_messages`` takes, exactly as Celery 5.7.0 resolves them
on its way to the broker: ``Task.apply_async`` (typing check, shadow, exec
options), ``send_task`` (router, expiry, parent ids), ``as_task_v2`` (eta,
reprs, root id), ``send_task_message`` (queue, exchange, delivery mode) and
kombu's ``Producer.publish`` (properties). Celery's own functions are
called where they are cheap (router, shadow name) so that their behaviour
is reused, not copied. None means: Celery publishes this child.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from celery.app.task import Task
from celery.utils.functional import maybe_list
from celery.utils.nodenames import anon_nodename
from celery.utils.time import add_seconds_to_datetime, maybe_make_aware, subtract_datetimes
from dateutil.parser import isoparse

from turbogroup.celery_guards import app_now, argument_check, setting
from turbogroup.publish.signalled import SendOptions

# send_task_message's and kombu Producer.publish's named parameters.
PUBLISH_PARAMS = frozenset({
    "exchange", "routing_key", "queue", "event_dispatcher", "retry", "retry_policy",
    "serializer", "delivery_mode", "compression", "declare", "headers", "exchange_type",
    "timeout", "confirm_timeout", "mandatory", "immediate", "priority", "content_type",
    "content_encoding", "expiration",
})  # fmt: skip
# send_task_message's named parameters: the other options it is given
# update the message properties (and reach before_task_publish so).
SEND_PARAMS = frozenset({
    "exchange", "routing_key", "queue", "event_dispatcher", "retry", "retry_policy",
    "serializer", "delivery_mode", "compression", "declare", "headers", "exchange_type",
    "timeout", "confirm_timeout",
})  # fmt: skip
# Options this path does not reproduce: Celery handles those children.
UNSUPPORTED_OPTIONS = frozenset({"connection", "publisher", "router", "now", "timezone"})


class AppliedAsync(NamedTuple):
    """What Celery's ``Task.apply_async`` passes to ``app.send_task``
    besides the task's name and arguments: its own named parameters, and
    the options with the task's exec options under them."""

    task_id: Any
    producer: Any
    link: Any
    link_error: Any
    shadow: Any
    options: dict[str, Any]


def apply_async_preamble(
    task: Task, args: Any, kwargs: Any, options: dict[str, Any]
) -> AppliedAsync:
    """Celery's ``Task.apply_async`` up to ``app.send_task``: the typing
    check, its named parameters taken out of ``options`` (the caller's own
    copy, changed), the shadow name and the task's exec options. Shared by
    the resolver and by the path inside a tracer's wrappers
    (``publish/wrapped.py``)."""
    check_arguments = argument_check(task)
    if check_arguments is not None:
        check_arguments(*(args or ()), **(kwargs or {}))
    task_id = options.pop("task_id", None)
    producer = options.pop("producer", None)
    link, link_error = options.pop("link", None), options.pop("link_error", None)
    shadow = options.pop("shadow", None) or task.shadow_name(args, kwargs, options)
    options = dict(task._get_exec_options(), **options)
    options.setdefault("ignore_result", task.ignore_result)
    return AppliedAsync(task_id, producer, link, link_error, shadow, options)


class MessageResolver:
    """What Celery reads from the app for every message, read once per
    dispatch; queues are declared once each, on the dispatch's producer."""

    def __init__(
        self,
        app: Any,
        producer: Any,
        channel: Any,
        retry: bool = True,
        retry_policy: dict[str, Any] | None = None,
        *,
        declares: bool = True,
        delays_through_celery: bool = False,
    ) -> None:
        conf = app.conf
        amqp = app.amqp
        # Whether it declares each queue itself: the Redis path's messages
        # skip kombu's publish, which declares them (RabbitMQ's go through
        # it, and the confirm channel declares what it recorded).
        self.declares = declares
        # Whether a countdown or an eta takes Celery's path: on RabbitMQ
        # Celery's send_task may route it to its native delayed delivery
        # (quorum queues), which this does not reproduce.
        self.delays_through_celery = delays_through_celery
        self.app = app
        self.producer = producer
        self.channel = channel
        self.retry = retry
        self.retry_policy = retry_policy or {}
        self.queues = amqp.queues
        self.router = amqp.router
        self.default_queue = amqp.default_queue
        self.default_serializer = setting(conf, "task_serializer")
        self.default_delivery_mode = setting(conf, "task_default_delivery_mode")
        self.thread_oid = app.thread_oid
        self.origin = anon_nodename()
        self.clock = AppClock.of(app)
        self.inherit_priority = setting(conf, "task_inherit_parent_priority")
        self.parent = app.current_worker_task
        self.declared: set[int] = set()
        # What send_task_message was given besides the message, for the
        # last message resolved (publish/signalled.py).
        self.last_send: SendOptions | None = None

    def resolve(
        self, task: Task, args: Any, kwargs: Any, opts: dict[str, Any]
    ) -> tuple[str, str, dict[str, Any]] | None:
        if UNSUPPORTED_OPTIONS.intersection(opts):
            return None
        # Task.apply_async
        if task.soft_time_limit and task.time_limit and task.soft_time_limit > task.time_limit:
            return None  # Celery raises ValueError: let it
        applied = apply_async_preamble(task, args, kwargs, opts)
        task_id, link, link_error = applied.task_id, applied.link, applied.link_error
        shadow, opts = applied.shadow, applied.options
        if (opts.get("serializer") or self.default_serializer) != "json":
            return None
        if opts.get("compression"):
            return None
        # send_task
        if task_id is None:
            return None  # a group's children are frozen; anything else: Celery
        countdown, eta = opts.pop("countdown", None), opts.pop("eta", None)
        if self.delays_through_celery and (eta or countdown):
            return None
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
        clock = clock_fields(self.clock, Clock(countdown, eta, expires))
        if clock is None:
            return None  # Celery logs a warning first: let it
        eta, expires, expires_s = clock
        if expires_s is not None:
            opts["expiration"] = expires_s
        parent = self.parent
        if parent and (not root_id or not parent_id):
            if not root_id:
                root_id = parent.request.root_id or parent.request.id
            if not parent_id:
                parent_id = parent.request.id
            if self.inherit_priority:
                opts.setdefault("priority", parent.request.delivery_info.get("priority"))
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            return None  # Celery raises TypeError: let it
        stamped_headers = opts.pop("stamped_headers", None)
        stamps = {header: opts.pop(header) for header in stamped_headers or []}
        # send_task_message
        queue = opts.pop("queue", None)
        exchange = opts.pop("exchange", None)
        routing_key = opts.pop("routing_key", None)
        exchange_type = opts.pop("exchange_type", None)
        delivery_mode = opts.pop("delivery_mode", None)
        headers = opts.pop("headers", None)
        # before_task_publish's properties: Celery's, updated by these
        left = {k: v for k, v in opts.items() if k not in SEND_PARAMS}
        if queue is None and exchange is None:
            queue = self.default_queue
        qname = queue
        if queue is not None:
            if isinstance(queue, str):
                qname, queue = queue, self.queues[queue]
            else:
                qname = queue.name
        send = SendOptions(
            left,
            queue,
            opts.get("declare"),
            opts.get("retry"),
            opts.get("retry_policy"),
            opts.get("serializer"),
            opts.get("timeout"),
            opts.get("confirm_timeout"),
        )
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
        if self.declares:
            self.declare(queue)
        priority = opts.pop("priority", None)
        expiration = expiration_property(opts.pop("expiration", None))
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
        self.last_send = send
        return task_id, qname, message

    def declare(self, queue: Any) -> None:
        # Celery declares the queue with every message; kombu caches it, so
        # declaring once per dispatch sends exactly what Celery sends.
        if queue is None or id(queue) in self.declared:
            return
        if not declared_on(self.producer.channel, queue):
            # As Celery's publish does: retried per the policy, a broker
            # error surfacing as kombu's OperationalError.
            with self.producer.connection._reraise_as_library_errors():
                self.producer.maybe_declare(queue, retry=self.retry, **self.retry_policy)
        self.declared.add(id(queue))


class Clock(NamedTuple):
    """A message's options that Celery reads the clock for (``countdown``,
    ``eta``, ``expires``: the task's own ``expires`` unless the call gives
    one), as ``send_task`` is given them."""

    countdown: Any
    eta: Any
    expires: Any

    @classmethod
    def of(cls, task: Task, opts: dict[str, Any]) -> Clock:
        """The clock options of a child of ``task`` with options ``opts``
        (as ``Signature.apply_async`` merged them; ``resolve`` merges the
        task's execution options under them)."""
        expires = opts["expires"] if "expires" in opts else task._get_exec_options().get("expires")
        return cls(opts.get("countdown"), opts.get("eta"), expires)

    def reads_the_clock(self) -> bool:
        return bool(self.countdown) or self.eta is not None or self.expires is not None


class AppClock(NamedTuple):
    """An app's clock as Celery reads it for a message: ``app.now`` (see
    ``celery_guards.app_now``) and ``app.timezone``."""

    now: Callable[[], datetime]
    timezone: Any

    @classmethod
    def of(cls, app: Any) -> AppClock:
        return cls(app_now(app), app.timezone)


def clock_fields(app: AppClock, clock: Clock) -> tuple[Any, Any, Any] | None:
    """A message's ``(eta, expires, expiration in seconds)`` as Celery
    computes them from a fresh ``app.now()`` (``send_task`` for the
    expiration, then ``as_task_v2`` for eta and expires: the same reads of
    the clock, in the same order). None for an expiry in the past: Celery
    logs a warning for it, so it takes Celery's path; and for an eta or an
    expiry that does not come out a str or None (a falsy ``eta`` such as 0
    stays as it is in Celery's message, which the encoder does not write)."""
    countdown, eta, expires = clock
    expires_s = None
    if expires is not None:  # send_task
        if isinstance(expires, datetime):
            expires_s = subtract_datetimes(expires, app.now()).total_seconds()
        elif isinstance(expires, str):
            expires_s = subtract_datetimes(isoparse(expires), app.now()).total_seconds()
        else:
            expires_s = expires
        if expires_s < 0:
            return None
    now = None  # as_task_v2, which reads the clock again
    if countdown:
        now = now or app.now()
        eta = maybe_make_aware(add_seconds_to_datetime(now, countdown), tz=app.timezone)
    if isinstance(expires, numbers.Real):
        now = now or app.now()
        expires = maybe_make_aware(add_seconds_to_datetime(now, expires), tz=app.timezone)
    if not isinstance(eta, str):
        eta = eta and eta.isoformat()
    if not isinstance(expires, str):
        expires = expires and expires.isoformat()
    if not (_str_or_none(eta) and _str_or_none(expires)):
        return None
    return eta, expires, expires_s


def _str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def child_clock(
    app: AppClock, clock: Clock, template: dict[str, Any]
) -> tuple[Any, Any, Any] | None:
    """``AlikeChild.clock`` of a child alike ``template`` whose options
    read the clock: its own ``(eta, expires, expiration)`` (the template's
    expiration property where it has no expiry of its own). None for an
    expiry in the past: the child takes Celery's path."""
    fields = clock_fields(app, clock)
    if fields is None:
        return None
    eta, expires, expires_s = fields
    expiration = template["expiration"] if expires_s is None else expiration_property(expires_s)
    return eta, expires, expiration


def expiration_property(expires_s: Any) -> str | None:
    """kombu's ``expiration`` property for an expiry in seconds."""
    return None if expires_s is None else str(int(expires_s * 1000))


def declared_on(channel: Any, entity: Any) -> bool:
    """Whether kombu's ``maybe_declare(entity, channel)`` would return at
    once: its connection's cache of declared entities holds it (the first
    check of ``kombu.common._maybe_declare``). Asking kombu costs a copy of
    the entity bound to the channel and a retry wrapper, ~100 µs of a
    small dispatch."""
    connection = getattr(channel, "connection", None)
    return bool(
        connection
        and entity.can_cache_declaration
        and hash(entity) in connection.client.declared_entities
    )


__all__ = [
    "PUBLISH_PARAMS",
    "SEND_PARAMS",
    "UNSUPPORTED_OPTIONS",
    "AppClock",
    "Clock",
    "MessageResolver",
    "child_clock",
    "clock_fields",
    "declared_on",
    "expiration_property",
]

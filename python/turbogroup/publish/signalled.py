"""The encoder's messages with publish signals: what a tracer's
``before_task_publish`` receiver adds to a message is in the message the
encoder builds, and ``after_task_publish`` is held until it is sent.

For each message, Celery's ``send_task_message`` gives the receivers of
``before_task_publish`` the message's headers, properties and body (as
``as_task_v2`` made them), its exchange, routing key, declarations and retry
policy, then publishes what they leave, then sends ``after_task_publish``.
OpenTelemetry's receiver starts a span and injects ``traceparent`` into the
headers. Celery's own path around the receivers costs about 7× what
they do (~455 against ~65 µs a message here).

Here the same arguments are built from the message the resolver made
(``publish/resolve.py``), the signal is sent with them in the child's own
context (``publish/signals.py``), and then:

- when the receivers only added headers or changed their values, the
  encoder writes the message with those headers: the standard ones stay
  in Celery's places and the added ones follow in their order, as in
  Celery's ``headers`` dict. A child alike its kind's first one whose
  receivers only added headers (a tracer's trace context) stays an alike
  child, with the added headers as its own: the encoder writes it from
  its kind's template, as it writes children without receivers;
- when they changed anything else (properties, body, declarations, retry
  policy), removed a header, or added a value the encoder cannot render,
  the message is published as ``send_task_message`` goes on: kombu's
  ``Producer.publish`` with exactly its arguments, into the dispatch's
  recording producer.

Either way ``after_task_publish`` is held, as for Celery's publish, and
sent once the message is sent. A child whose arguments the encoder cannot
render at all goes through Celery's own ``apply_async``, signals included.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import partial
from itertools import islice
from operator import is_
from typing import Any, NamedTuple, cast

from turbogroup import _core
from turbogroup.celery_guards import setting
from turbogroup.publish.alike import AlikeChild, new_tuple
from turbogroup.publish.signals import between_signals

# as_task_v2's headers, in its order (the encoder's): a receiver that
# removes one (and perhaps adds it again, at the end) leaves an order the
# encoder does not write.
STANDARD_HEADERS = _core.STANDARD_HEADERS


class SendOptions(NamedTuple):
    """What ``send_task_message`` is given besides the message, for one
    resolved message: its leftover keyword arguments (they update the
    properties) and the named ones the signals and the publish read."""

    properties: dict[str, Any]
    queue: Any
    declare: Any
    retry: Any
    retry_policy: Any
    serializer: Any
    timeout: Any
    confirm_timeout: Any


class CeleryMessage(NamedTuple):
    """``before_task_publish``'s arguments for one message, as Celery's
    ``send_task_message`` passes them."""

    name: str
    body: tuple[Any, Any, dict[str, Any]]
    exchange: str
    routing_key: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    declare: Any
    retry_policy: dict[str, Any]

    def signal_arguments(self) -> dict[str, Any]:
        return {
            "sender": self.name,
            "body": self.body,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "declare": self.declare,
            "headers": self.headers,
            "properties": self.properties,
            "retry_policy": self.retry_policy,
        }


class Built(NamedTuple):
    """A message as the resolver made it (``message``: the encoder's dict)
    and a child's fields put into it (an alike child's, ``child``) with
    what ``send_task_message`` was given."""

    message: dict[str, Any]
    task_id: str
    group_index: Any
    args: Any
    kwargs: Any
    send: SendOptions
    child: AlikeChild | None = None


# queue(final, message, through_kombu): see SignalledMessages.publish
Queue = Callable[[Any, CeleryMessage, Callable[[], Any]], Any]


class SignalledMessages:
    """Sends one dispatch's encoder-built messages through the publish
    signals (see the module docstring)."""

    def __init__(
        self, app: Any, producer: Any, limits: dict[str, Any], reprs_from_arguments: bool = True
    ) -> None:
        """``reprs_from_arguments``: the encoder computes an alike child's
        reprs from its arguments when it writes it (Redis), so a receiver
        that changed them in place leaves a message sent whole; False
        where its message keeps the headers as they are (RabbitMQ's
        records), as Celery's does."""
        conf = app.conf
        self.reprs_from_arguments = reprs_from_arguments
        self.producer = producer
        self.limits = limits
        self.notices = producer.owner.notices
        self.default_retry = setting(conf, "task_publish_retry")
        self.default_policy = setting(conf, "task_publish_retry_policy")
        self.default_serializer = setting(conf, "task_serializer")
        self.default_compression = setting(conf, "task_compression")

    def publish(self, built: Built, queue: Queue | None = None) -> bool:
        """Send ``built`` between the signals; False when the encoder cannot
        render its arguments (then Celery's ``apply_async`` must publish it,
        signals and all, and nothing was sent here). ``queue(final,
        message, through_kombu)`` queues the encoder's message ``final``
        (``message``: the signals' arguments as the receivers left them),
        with what publishes it as Celery would if the encoder finds it
        cannot write it; without ``queue``, kombu's publish records every
        message."""
        message = self.celery_message(built)
        if message is None:
            return False
        # The recording producer keys its record (the publish returns None).
        publish: Callable[[], Any] = partial(self._through_kombu, built, message)
        if queue is not None:
            publish = self._queued_publish(built, message, queue)
        context = contextvars.copy_context()
        context.run(between_signals, context, self.notices, message, publish)
        return True

    def _queued_publish(
        self, built: Built, message: CeleryMessage, queue: Queue
    ) -> Callable[[], Any]:
        """The publish that queues the encoder's message when the receivers
        changed only headers (compared with the arguments as they are now,
        before the signals), kombu's otherwise."""
        before = Snapshot.of(message, built.child is not None and not built.message["headers"])

        def publish() -> Any:
            final = before.encodable(built, message, self.limits, self.reprs_from_arguments)
            if final is not None:
                return queue(final, message, partial(self._through_kombu, built, message, final))
            self._through_kombu(built, message)
            return None

        return publish

    def _through_kombu(self, built: Built, message: CeleryMessage, queued: Any = None) -> None:
        """``send_task_message``'s publish of what the receivers left, into
        the recording producer; a message ``queued`` for the encoder before
        has its held ``after_task_publish`` moved to the record."""
        self.producer.publish(message.body, **self.publish_kwargs(built, message))
        if queued is not None:
            notice = self.notices.pop(id(queued), None)
            if notice is not None:
                self.notices[id(self.producer.deferred[-1])] = notice

    def celery_message(self, built: Built) -> CeleryMessage | None:
        """``before_task_publish``'s arguments for ``built``, as Celery's
        ``send_task_message`` makes them; None when the encoder cannot
        render the reprs of its arguments."""
        m, send, task_id = built.message, built.send, built.task_id
        args, kwargs = built.args or (), built.kwargs or {}  # as_task_v2
        argsrepr, kwargsrepr = m["argsrepr"], m["kwargsrepr"]
        if argsrepr is None or kwargsrepr is None:
            reprs = _core.task_reprs(args, kwargs, **self.limits)
            if isinstance(reprs, _core.Unsupported):
                return None
            argsrepr = reprs[0] if argsrepr is None else argsrepr
            kwargsrepr = reprs[1] if kwargsrepr is None else kwargsrepr
        headers = {
            "lang": "py",
            "task": m["name"],
            "id": task_id,
            "shadow": m["shadow"],
            "eta": m["eta"],
            "expires": m["expires"],
            "group": m["group_id"],
            "group_index": built.group_index,
            "retries": m["retries"],
            "timelimit": [m["time_limit"], m["soft_time_limit"]],
            "root_id": m["root_id"] or task_id,
            "parent_id": m["parent_id"],
            "argsrepr": argsrepr,
            "kwargsrepr": kwargsrepr,
            "origin": m["origin"],
            "ignore_result": m["ignore_result"],
            "replaced_task_nesting": m["replaced_task_nesting"],
            "stamped_headers": m["stamped_headers"],
            "stamps": dict(m["stamps"]),
        }
        if m["headers"]:
            headers.update(m["headers"])  # send_task_message's headers
        if built.child is not None and built.child.headers:
            headers.update(built.child.headers)  # the alike child's own
        properties = {"correlation_id": task_id, "reply_to": m["reply_to"]}
        if send.properties:
            properties.update(send.properties)
        embed = {
            "callbacks": m["callbacks"],
            "errbacks": m["errbacks"],
            "chain": m["chain"],
            "chord": m["chord"],
        }
        declare = send.declare
        if declare is None and send.queue is not None:
            declare = [send.queue]
        policy = self.default_policy
        retry_policy = dict(policy, **send.retry_policy) if send.retry_policy else dict(policy)
        return CeleryMessage(
            m["name"],
            (args, kwargs, embed),
            m["exchange"],
            m["routing_key"],
            headers,
            properties,
            declare,
            retry_policy,
        )

    def publish_kwargs(self, built: Built, message: CeleryMessage) -> dict[str, Any]:
        """``send_task_message``'s arguments to ``producer.publish``."""
        send = built.send
        return dict(
            exchange=message.exchange,
            routing_key=message.routing_key,
            serializer=send.serializer or self.default_serializer,
            compression=self.default_compression,
            retry=self.default_retry if send.retry is None else send.retry,
            retry_policy=message.retry_policy,
            delivery_mode=built.message["delivery_mode"],
            declare=message.declare,
            headers=message.headers,
            timeout=send.timeout,
            confirm_timeout=send.confirm_timeout,
            **message.properties,
        )


class Snapshot(NamedTuple):
    """What a message's signal arguments held before the receivers ran
    (the headers only for an alike child's: a whole message takes them
    as they are left)."""

    properties: list[tuple[str, Any]]
    embed: list[tuple[str, Any]]
    declare: list[Any] | None
    retry_policy: dict[str, Any]
    # an alike child's headers: their names, their values, the timelimit's
    header_names: tuple[str, ...] | None
    header_values: tuple[Any, ...] | None
    timelimit: list[Any] | None

    @classmethod
    def of(cls, message: CeleryMessage, alike: bool) -> Snapshot:
        declare = message.declare
        headers = message.headers
        return cls(
            list(message.properties.items()),
            list(message.body[2].items()),
            None if declare is None else list(declare),
            dict(message.retry_policy),
            tuple(headers) if alike else None,
            tuple(headers.values()) if alike else None,
            list(headers["timelimit"]) if alike else None,
        )

    def encodable(
        self, built: Built, message: CeleryMessage, limits: dict[str, Any], check_reprs: bool
    ) -> Any:
        """The encoder's message for what the receivers left, when only
        headers were added or changed (an alike child, when it is one and
        they only added headers, and, with ``check_reprs``, its reprs are
        still those of its arguments); else None. (Whether the encoder can
        render every value is found when the step is sealed.)"""
        if (
            list(message.properties.items()) != self.properties
            or list(message.body[2].items()) != self.embed
            or (self.declare is not None and list(message.declare) != self.declare)
            or message.retry_policy != self.retry_policy
        ):
            return None
        args, kwargs, _ = message.body
        headers = message.headers
        added = self._added_headers(headers)
        if (
            added is not None
            and built.child is not None
            and (not check_reprs or _reprs_hold(built, message, limits))
        ):
            child = built.child
            fields = (*child[:2], args, kwargs, *child[4:9], added or None)
            return new_tuple(AlikeChild, fields)
        if tuple(islice(headers, len(STANDARD_HEADERS))) != STANDARD_HEADERS:
            return None
        return dict(
            built.message,
            task_id=built.task_id,
            group_index=built.group_index,
            args=args,
            kwargs=kwargs,
            argsrepr=headers["argsrepr"],
            kwargsrepr=headers["kwargsrepr"],
            # a copy: what later receivers do to Celery's dict is after
            # Celery serialized it
            headers=dict(headers),
        )

    def _added_headers(self, headers: dict[str, Any]) -> dict[str, Any] | None:
        """The headers the receivers appended, when that is all they did
        to an alike child's: every header before is the very value it was
        (a list changed in place is not), in its place; else None."""
        names, values = self.header_names, self.header_values
        if names is None or values is None or tuple(islice(headers, len(names))) != names:
            return None
        if not all(map(is_, values, headers.values())):  # the first len(names)
            return None
        timelimit = headers["timelimit"]
        if (
            len(timelimit) != 2
            or not all(map(is_, timelimit, cast(list[Any], self.timelimit)))
            or headers["stamps"]
            or headers["stamped_headers"] is not None
        ):
            return None
        return dict(islice(headers.items(), len(names), None))


def _reprs_hold(built: Built, message: CeleryMessage, limits: dict[str, Any]) -> bool:
    """Whether the reprs in the headers are still those of the arguments,
    where the template has the encoder compute them (a receiver may have
    changed the arguments in place after Celery computed the reprs)."""
    template = built.message
    if template["argsrepr"] is not None and template["kwargsrepr"] is not None:
        return True
    args, kwargs, _ = message.body
    headers = message.headers
    reprs = _core.task_reprs(args, kwargs, **limits)
    return reprs == (headers["argsrepr"], headers["kwargsrepr"])


__all__ = ["STANDARD_HEADERS", "Built", "CeleryMessage", "SendOptions", "SignalledMessages"]

"""The record kombu's ``Producer.publish`` would make of a signalled
message on RabbitMQ, made without it.

With publish signal receivers (a tracer's), every child's message goes
between the signals with Celery's arguments (``publish/signalled.py``),
and then ``send_task_message``'s publish records it into the dispatch's
recording producer (``publish/deferred.py``). For a message alike its
kind's first one whose receivers only added headers (a trace context),
what that publish does is fixed by its kind: it serializes ``[args,
kwargs, embed]`` as JSON, adds ``delivery_mode`` to the properties, and
records the headers, properties, declarations and retry policy it is
given, with the kind's exchange, routing key, content type and the rest.
Here the body is serialized by the encoder (as kombu's JSON) and the rest
is put together as kombu would: about a fifth of such a dispatch's time.

A kind is used only if this construction gives back exactly kombu's
record of its first message (``SignalledKind.learn``): a serializer or
compression other than JSON without compression, a property that is one
of kombu's ``publish`` parameters, or a declaration kombu adds, and its
messages stay kombu's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from turbogroup import _core
from turbogroup.publish.alike import AlikeChild, new_tuple
from turbogroup.publish.amqp_content import item_writes, short_str, table_writes
from turbogroup.publish.amqp_fast import EMBED_KEYS
from turbogroup.publish.deferred import Deferred
from turbogroup.publish.signalled import CeleryMessage


class BeforeKombu(NamedTuple):
    """What a message's signal arguments held just before kombu's publish
    (which may change the headers and the declarations in place)."""

    headers: list[tuple[str, Any]]
    declare: list[Any]

    @classmethod
    def of(cls, message: CeleryMessage) -> BeforeKombu:
        declare = [] if message.declare is None else list(message.declare)
        return cls(list(message.headers.items()), declare)


class SignalledKind(NamedTuple):
    """A kind's first record (kombu's) and the encoder's template for the
    bodies of its alike messages."""

    record: Deferred
    body_template: dict[str, Any]  # for _core.amqp_alike_parts
    body_is_str: bool

    @classmethod
    def learn(
        cls,
        record: Any,
        message: CeleryMessage,
        before: BeforeKombu,
        limits: dict[str, Any],
    ) -> SignalledKind | None:
        """The kind of ``message``, whose kombu record is ``record``, when
        ``record_of`` makes that very record from it; else None. What
        ``record_of`` copies from the first record (priority, content type
        and encoding, routing, exchange, timeouts, the retry flag) is not
        compared: it comes from the kind's options and send options,
        which are its children's too (``builder.MessageBuilder``)."""
        if not isinstance(record, Deferred):
            return None
        embed = message.body[2]
        if not isinstance(embed, dict) or tuple(embed) != EMBED_KEYS:
            return None
        body = record.args[0]
        kind = cls(
            record,
            # reprs given: the headers have them, the encoder need not
            {"task_id": record.task_id, "name": message.name, **embed,
             "argsrepr": "", "kwargsrepr": ""},
            isinstance(body, str),
        )  # fmt: skip
        headers = message.headers
        args, kwargs = message.body[0], message.body[1]
        item = (record.task_id, headers.get("group_index"), args, kwargs)
        rebuilt = kind.record_of(item, message, limits)
        if rebuilt is None:
            return None
        same = (
            rebuilt == record
            and before.headers == list(record.args[4].items())
            and before.declare == record.args[10]
            and list(rebuilt.args[5].items()) == list(record.args[5].items())
        )
        return kind if same else None

    def record_of(
        self, child: Any, message: CeleryMessage, limits: dict[str, Any]
    ) -> Deferred | None:
        """kombu's record of ``message``, an alike child's (``child``: its
        id, index and arguments); None when the encoder cannot render its
        arguments."""
        parts = _core.amqp_alike_parts(self.body_template, [child], **limits)[0]
        if isinstance(parts, _core.Unsupported):
            return None
        body: Any = parts[0].decode("ascii") if self.body_is_str else parts[0]
        first = self.record.args
        properties = dict(message.properties)
        properties["delivery_mode"] = first[5]["delivery_mode"]
        declare = [] if message.declare is None else message.declare
        policy = message.retry_policy
        args = (
            body, *first[1:4], message.headers, properties, *first[6:10], declare,
            *first[11:14], policy,
        )  # fmt: skip
        fields = (child[0], args, self.record.retry, policy or {}, first[12], len(body))
        return new_tuple(Deferred, fields)


def table_is_plain(child: AlikeChild) -> bool:
    """Whether py-amqp writes this alike child's properties and headers
    for certain, as it wrote its kind's first one's: what it puts in them
    of its own is its id (also ``correlation_id``, a short string), its
    index and the headers the receivers added (the rest are its kind's,
    checked then)."""
    task_id, added = child.task_id, child.headers
    return (
        short_str(task_id)
        and item_writes(task_id)
        and item_writes(child.group_index)
        and (added is None or table_writes(added))
    )


__all__ = ["BeforeKombu", "SignalledKind", "table_is_plain"]

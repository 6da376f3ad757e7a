"""The AMQP fast path: children alike the first of their kind are
published without Celery building each message.

The first child of each kind (``publish/alike.py``) is published by Celery
into the dispatch's deferring producer, and its recorded ``_publish`` call
becomes the template. An alike child's record is then the template's with
its own task id (``id``, ``correlation_id``, and ``root_id`` where that was
the id), ``group_index``, body (``[args, kwargs, embed]``, serialized in
Rust as kombu's JSON would) and ``argsrepr``/``kwargsrepr`` (Celery's
``saferepr``, in Rust). The template is only used if this construction
gives back exactly Celery's record for the first child itself; otherwise
every child of that kind goes through Celery.

Alike children are kept as their ids and arguments until sent
(``ConfirmBatch.flush`` builds their records a batch at a time); every 1000
they are checked (encodable, not over the broker's message size), and one
the encoder cannot render is published through Celery instead. They are
then sent like any record: pipelined, publisher-confirmed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from celery import Signature

from turbogroup import _core
from turbogroup.errors import MessageTooLargeError, note_child
from turbogroup.publish.alike import (
    AlikeChild,
    AlikeKeys,
    by_template,
    celery_publishing_task,
    fast_path_allowed,
    repr_limits,
)
from turbogroup.publish.deferred import Deferred
from turbogroup.publish.signals import publish_receivers

CHECK_EVERY = 1000
EMBED_KEYS = ("callbacks", "errbacks", "chain", "chord")


class Template(NamedTuple):
    """The first child's record and what an alike child's record keeps."""

    record: Deferred
    message: dict[str, Any]  # for _core.amqp_alike_parts
    root_follows_id: bool
    body_is_str: bool


def record_for(t: Template, task_id: str, group_index: int, parts: tuple[Any, ...]) -> Deferred:
    """The template's record with an alike child's fields."""
    body, argsrepr, kwargsrepr = parts
    args = t.record.args
    headers = dict(args[4])
    headers["id"] = task_id
    headers["group_index"] = group_index
    if t.root_follows_id:
        headers["root_id"] = task_id
    if argsrepr is not None:
        headers["argsrepr"] = argsrepr
    if kwargsrepr is not None:
        headers["kwargsrepr"] = kwargsrepr
    properties = dict(args[5])
    properties["correlation_id"] = task_id
    if t.body_is_str:
        body = body.decode("ascii")  # kombu's JSON is ensure_ascii
    return t.record._replace(
        task_id=task_id,
        args=(body, *args[1:4], headers, properties, *args[6:]),
        body_size=len(body),
    )


class AmqpFastDispatch:
    """The alike children of one dispatch on RabbitMQ (module docstring).
    Same interface as ``RedisFastDispatch`` for ``turbogroup.plain``."""

    #: Chain members are not built from a template here: each chain's first
    #: message is Celery's, recorded (``plain_chains`` is Redis's).
    alike_chains = False

    def __init__(self, app: Any, batch: Any, max_message_size: int) -> None:
        self.app = app
        self.batch = batch
        self.producer = batch.producer  # the DeferringProducer
        # With publish signal receivers, amqp_signalled.py's path runs.
        self.enabled = fast_path_allowed(app, batch.producer) and not publish_receivers()
        self.max_message_size = max_message_size
        amqp = app.amqp
        self.limits = repr_limits(app)
        self._keys = AlikeKeys(amqp.router)
        self.last_alike: tuple[None, Template] | None = None
        # Its children read no clock: their messages are each Celery's.
        self.last_clock = None
        self.unchecked: list[AlikeChild] = []
        # the encoder's reasons for the children it passed to Celery
        self.fallbacks: Counter[str] = Counter()

    def add(
        self,
        sig: Signature,
        chord: Any,
        args: Any,
        kwargs: Any,
        options: dict[str, Any],
        fallback: Callable[[], Any],
    ) -> bool:
        """Publish ``sig`` through Celery (``fallback``, into the deferring
        producer) and learn its record as a template when it can be one."""
        self.last_alike = None
        task = celery_publishing_task(self.app, sig) if self.enabled else None
        if task is None:
            return False
        call = {"producer": self.producer, "add_to_parent": False, "chord": chord, **options}
        opts = {k: v for k, v in call.items() if v is not None}
        merged_args, merged_kwargs, opts = sig._merge(args or (), kwargs or {}, opts)
        deferred = self.producer.deferred
        before = len(deferred)
        fallback()
        key = self._keys.key(task, opts)
        if key is not None and len(deferred) == before + 1:
            template = self._learn(deferred[-1], merged_args, merged_kwargs, opts)
            if template is not None:
                self.last_alike = (None, template)
        return True

    def _learn(self, record: Any, args: Any, kwargs: Any, opts: dict[str, Any]) -> Template | None:
        if not isinstance(record, Deferred):
            return None
        body, _, content_type, content_encoding, headers, properties = record.args[:6]
        if (
            content_type != "application/json"
            or content_encoding != "utf-8"
            or not isinstance(headers, dict)
            or "compression" in headers
            or properties.get("correlation_id") != headers.get("id")
            or not isinstance(headers.get("group_index"), int)
        ):
            return None
        try:
            embed = json.loads(body)[2]
        except (ValueError, TypeError, IndexError, KeyError):
            return None
        if not isinstance(embed, dict) or tuple(embed) != EMBED_KEYS:
            return None
        template = Template(
            record,
            {
                "task_id": headers["id"],
                "name": headers["task"],
                **embed,
                "argsrepr": opts.get("argsrepr"),
                "kwargsrepr": opts.get("kwargsrepr"),
            },
            headers.get("root_id") == headers["id"],
            isinstance(body, str),
        )
        item = (record.task_id, headers["group_index"], args, kwargs)
        parts = _core.amqp_alike_parts(template.message, [item], **self.limits)[0]
        if isinstance(parts, _core.Unsupported):
            return None
        rebuilt = record_for(template, record.task_id, headers["group_index"], parts)
        same = rebuilt == record and all(
            list(a.items()) == list(b.items())
            for a, b in ((rebuilt.args[4], headers), (rebuilt.args[5], properties))
        )
        return template if same else None

    def add_alike(self, qname: Any, child: AlikeChild) -> None:
        """Queue a child whose message is ``child.template``'s (a
        ``last_alike``) but for its id, index and arguments."""
        del qname  # routing is the template's
        self.producer.deferred.append(child)
        self.unchecked.append(child)
        if len(self.unchecked) >= CHECK_EVERY:
            self.check()

    def check(self) -> None:
        """Check the alike children added since the last check: one the
        encoder cannot render goes through Celery (its record in its
        place), one over the broker's size limit raises."""
        entries, self.unchecked = self.unchecked, []
        bad: list[AlikeChild] = []
        for template, positions in by_template([entry.template for entry in entries]):
            run = [entries[i] for i in positions]
            items = run  # each child is its own item
            sizes = _core.amqp_alike_parts(template.message, items, check=True, **self.limits)
            for entry, size in zip(run, sizes):
                if isinstance(size, _core.Unsupported):
                    bad.append(entry)
                    self.fallbacks[size.reason] += 1
                elif size > self.max_message_size:
                    exc = MessageTooLargeError(
                        f"task {entry.task_id}: message body of {size} bytes is over the "
                        f"broker's max_message_size ({self.max_message_size} bytes; set "
                        "turbogroup_max_message_size to the broker's own limit)"
                    )
                    assert entry.group_index is not None  # a plain dispatch's child
                    note_child(exc, entry.group_index, template.message["name"], True)
                    raise exc
        if bad:
            # Each is published through Celery, whose record takes the
            # entry's place among the dispatch's records.
            deferred = self.producer.deferred
            where = {id(d): i for i, d in enumerate(deferred)}
            for entry in bad:
                entry.through_celery()
                deferred[where[id(entry)]] = deferred.pop()

    def built_here(self, records: list[Any], built: list[Any]) -> int:
        """How many of ``records`` this path built (as ``built``)."""
        return sum(1 for a, b in zip(records, built) if a is not b)

    def records(self, entries: list[Any]) -> list[Deferred]:
        """The records to send for a slice of the producer's records, alike
        children built now (they were checked)."""
        out: list[Any] = list(entries)
        templates = [e.template if type(e) is AlikeChild else None for e in entries]
        for template, at in by_template(templates):
            items = [entries[i] for i in at]
            parts = _core.amqp_alike_parts(template.message, items, **self.limits)
            for i, item, part in zip(at, items, parts):
                if isinstance(part, _core.Unsupported):  # checked before
                    raise RuntimeError(f"message no longer encodable: {part.reason}")
                out[i] = record_for(template, item[0], item[1], part)
        return out


__all__ = ["AmqpFastDispatch", "Template", "record_for"]

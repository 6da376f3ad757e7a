"""All-or-nothing dispatch: every message of a group is built before the
first one leaves the process.

Celery publishes a group child by child, so a bad child in the middle
(an argument the serializer rejects, a failed ``task.typing`` check, an
unknown queue) leaves the children before it queued and the rest not.
Here the children publish through a :class:`DeferringProducer`: kombu's
``Producer.publish`` runs as usual (routing, ``_prepare`` serializes and
compresses the body, so every error Celery would raise is raised now), and
only its last step, ``_publish`` (declare, then ``basic_publish``), is
recorded instead of run. Once the whole group is built, the recorded calls
are replayed on the real producer, in order, by the transport's bulk
strategy (``publish/batch.py``, ``publish/amqp.py``).

A child that does not hand its ``producer`` on still publishes at once
through Celery's pool: Celery 5.7.0's ``chain.run`` drops the producer it is
given, so the first message of a chain inside a group is not deferred (nor
batched, nor confirmed), exactly as with Celery's own group.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from kombu import Producer

from turbogroup.publish.signals import recorded


class Deferred(NamedTuple):
    """One recorded ``Producer._publish`` call."""

    task_id: str
    args: tuple[Any, ...]
    retry: bool
    retry_policy: dict[str, Any]
    confirm_timeout: float | None
    body_size: int


def task_id_of(headers: dict[str, Any] | None, properties: dict[str, Any]) -> str:
    # Celery sets correlation_id to the task id (protocols 1 and 2); the
    # protocol 2 header is the fallback for hand-made messages.
    task_id = properties.get("correlation_id") or (headers or {}).get("id")
    return str(task_id)


def settings_of(template: Any) -> dict[str, Any]:
    """A producer's defaults: another producer made with them builds the
    same messages."""
    return {
        "exchange": template.exchange,
        "routing_key": template.routing_key,
        "serializer": template.serializer,
        "compression": template.compression,
        "auto_declare": template.auto_declare,
        "on_return": template.on_return,
    }


class DeferringProducer(Producer):
    """A ``kombu.Producer`` that builds messages and keeps them.

    Constructed like the producer it stands in for (same channel, exchange,
    serializer, ...), so the messages are the ones that producer would send.
    ``owner`` is the bulk publisher of the dispatch: a nested dispatch (a
    chord or group inside the group) that is handed this producer records
    into the same owner, so the whole canvas is all-or-nothing.
    """

    def __init__(self, template: Any, owner: Any, channel: Any = None) -> None:
        self.owner = owner
        self.deferred: list[Deferred] = []
        self._retry = False  # the retry flag of the publish being recorded
        super().__init__(template.channel if channel is None else channel, **settings_of(template))

    def publish(self, body: Any, *args: Any, **kwargs: Any) -> Any:
        # Producer.publish as it is now: kombu's, or a tracer's wrapper of it
        return self.publish_by(Producer.publish, body, *args, **kwargs)

    def publish_by(
        self, publish: Any, body: Any, *args: Any, retry: bool = False, **kwargs: Any
    ) -> Any:
        """Record what ``publish`` (kombu's ``Producer.publish``, or a
        wrapper of it) makes of these arguments."""
        # kombu's ensure() wrapper is for sending: the replay retries per the
        # recorded policy instead, so build without it.
        self._retry = retry
        kwargs["retry"] = False
        result = publish(self, body, *args, **kwargs)
        # kombu's publish ends in _publish, which recorded it (or raised)
        recorded(self.deferred[-1], body, kwargs)
        return result

    def _publish(
        self,
        body: Any,
        priority: Any,
        content_type: Any,
        content_encoding: Any,
        headers: Any,
        properties: Any,
        routing_key: Any,
        mandatory: Any,
        immediate: Any,
        exchange: Any,
        declare: Any,
        timeout: Any = None,
        confirm_timeout: Any = None,
        retry: bool = False,
        retry_policy: Any = None,
    ) -> None:
        args = (
            body, priority, content_type, content_encoding, headers, properties,
            routing_key, mandatory, immediate, exchange, declare, timeout,
            confirm_timeout, False, retry_policy,
        )  # fmt: skip
        record = Deferred(
            task_id_of(headers, properties),
            args,
            self._retry or retry,
            retry_policy or {},
            confirm_timeout,
            len(body) if isinstance(body, (bytes, str)) else 0,
        )
        self.owner.check(record)
        self.deferred.append(record)

    def take(self) -> list[Deferred]:
        deferred, self.deferred = self.deferred, []
        return deferred


def replay(producer: Any, record: Deferred) -> Any:
    """Run the recorded ``_publish`` on ``producer`` (kombu's own method, so
    a producer's batch context or confirm channel applies as usual)."""
    return Producer._publish(producer, *record.args)


__all__ = ["Deferred", "DeferringProducer", "replay", "settings_of", "task_id_of"]

"""The broker's limit on AMQP: Celery's own messages for the bench task,
built beforehand, published by py-amqp directly with publisher confirms,
pipelined as turbogroup pipelines them (a batch written, then its acks
drained). ``DESIGN.md`` section 4 sets turbogroup's AMQP target against
this: a confirmed dispatch within 1.3x of it, measured in the same run.
"""

from __future__ import annotations

import amqp
from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid

from turbogroup.benchkit.transports import TASK_NAME, Transport

NAME = "raw-amqp"
BATCH = 1000


class RawAmqpPeer:
    """``build(n)`` outside the timing, ``dispatch(built)`` timed."""

    def __init__(self, transport: Transport, app: Celery) -> None:
        self.transport = transport
        self.app = app
        with app.connection_for_write() as conn:
            app.amqp.queues[transport.queue].bind(conn.default_channel).declare()
            info = conn.info()
        self.connection = amqp.Connection(
            host=f"{info['hostname']}:{info['port']}",
            userid=info["userid"],
            password=info["password"],
            virtual_host=info["virtual_host"],
        )
        self.connection.connect()

    def build(self, n: int) -> list[amqp.Message]:
        """What Celery's group publishes for ``add(i, i)``, one per task."""
        group_id = uuid()
        messages = []
        for i in range(n):
            task_id = uuid()
            m = self.app.amqp.as_task_v2(
                task_id, TASK_NAME, args=(i, i), group_id=group_id, group_index=i
            )
            content_type, content_encoding, body = dumps(m.body, serializer="json")
            messages.append(
                amqp.Message(
                    body,
                    content_type=content_type,
                    content_encoding=content_encoding,
                    application_headers=m.headers,
                    delivery_mode=2,
                    priority=0,
                    **m.properties,
                )
            )
        return messages

    def dispatch(self, built: list[amqp.Message]) -> None:
        channel = self.connection.channel()
        acked = 0

        def on_ack(delivery_tag: int, multiple: bool) -> None:
            nonlocal acked
            acked = delivery_tag if multiple else acked + 1

        channel.events["basic_ack"].add(on_ack)
        channel.confirm_select()
        queue = self.transport.queue
        try:
            for start in range(0, len(built), BATCH):
                for message in built[start : start + BATCH]:
                    channel._basic_publish(message, exchange=queue, routing_key=queue)
                while acked < min(start + BATCH, len(built)):
                    self.connection.drain_events(timeout=60)
        finally:
            channel.close()

    def depth(self) -> int:
        return self.transport.depth(self.app)

    def purge(self) -> None:
        self.transport.purge(self.app)

    def close(self) -> None:
        self.connection.close()


def is_amqp(transport: Transport) -> bool:
    return transport.name == "amqp"


__all__ = ["NAME", "RawAmqpPeer", "is_amqp"]

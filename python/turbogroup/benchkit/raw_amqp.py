"""The broker's limit on AMQP: Celery's own messages for the bench task,
built beforehand, published by py-amqp directly with publisher confirms,
written continuously while the acks are drained as they arrive, then
every remaining ack awaited.

This is the best a plain client does on the same broker. It must not share
turbogroup's own constraints: a reference that waited for each batch's
acks before writing the next (turbogroup's stop-and-wait) measured 2.5x
faster than it should have looked against turbogroup.
"""

from __future__ import annotations

import select
import socket

import amqp
from celery import Celery
from kombu.serialization import dumps
from kombu.utils.uuid import uuid

from turbogroup.benchkit.transports import TASK_NAME, Transport, TransportPeer

NAME = "raw-amqp"
# Readable acks are drained after every this many writes, without waiting.
DRAIN_EVERY = 100


class RawAmqpPeer(TransportPeer):
    """``build(n)`` outside the timing, ``dispatch(built)`` timed."""

    def __init__(self, transport: Transport, app: Celery) -> None:
        super().__init__(transport, app)
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
        sock = self.connection.sock
        try:
            for i, message in enumerate(built, 1):
                channel._basic_publish(message, exchange=queue, routing_key=queue)
                if i % DRAIN_EVERY == 0:
                    self._drain_ready(sock)
            while acked < len(built):
                self.connection.drain_events(timeout=60)
        finally:
            channel.close()

    def _drain_ready(self, sock: socket.socket) -> None:
        """Read the acks that have arrived, without waiting for more."""
        while select.select([sock], [], [], 0)[0]:
            try:
                self.connection.drain_events(timeout=0)
            except TimeoutError:
                return

    def close(self) -> None:
        self.connection.close()


def is_amqp(transport: Transport) -> bool:
    return transport.name in ("amqp", "amqp-quorum")


__all__ = ["NAME", "RawAmqpPeer", "is_amqp"]

"""The broker's limit on Redis: Celery's own messages for the bench task,
built beforehand as kombu's Redis envelopes, pushed by redis-py with
multi-value LPUSHes of 1,000 values, every command in one pipeline (no
transaction, no landed marker), then every reply read.

This is the best a plain client does on the same Redis. It shares none of
turbogroup's own constraints (all or nothing, a MULTI/EXEC per batch that
records it landed, a window of batches in flight), so the ratio to it is
what those cost on top of the broker.
"""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery
from kombu.serialization import dumps
from kombu.utils.json import dumps as json_dumps
from kombu.utils.uuid import uuid

from turbogroup.benchkit.transports import TASK_NAME, Transport, TransportPeer

NAME = "raw-redis"
VALUES_PER_LPUSH = 1000


class RawRedisPeer(TransportPeer):
    """``build(n)`` outside the timing, ``dispatch(built)`` timed."""

    def __init__(self, transport: Transport, app: Celery) -> None:
        super().__init__(transport, app)
        self.client = redis.Redis.from_url(transport.url)

    def build(self, n: int) -> tuple[str, list[bytes]]:
        """The list key and the envelope kombu's Redis channel pushes for
        each of Celery's group messages for ``add(i, i)``."""
        group_id = uuid()
        queue = self.transport.queue
        envelopes = []
        with self.app.connection_for_write() as conn:
            channel: Any = conn.default_channel
            key = channel._q_for_pri(queue, 0)
            for i in range(n):
                m = self.app.amqp.as_task_v2(
                    uuid(),
                    TASK_NAME,
                    args=(i, i),
                    group_id=group_id,
                    group_index=i,
                    reply_to=self.app.thread_oid,
                )
                content_type, content_encoding, body = dumps(m.body, serializer="json")
                message = channel.prepare_message(
                    body,
                    0,
                    content_type,
                    content_encoding,
                    m.headers,
                    {**m.properties, "delivery_mode": 2},
                )
                # Celery publishes to the default exchange on Redis
                channel._inplace_augment_message(message, "", queue)
                envelopes.append(json_dumps(message).encode())
        return key, envelopes

    def dispatch(self, built: tuple[str, list[bytes]]) -> None:
        key, envelopes = built
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(envelopes), VALUES_PER_LPUSH):
            pipe.lpush(key, *envelopes[start : start + VALUES_PER_LPUSH])
        pipe.execute()

    def close(self) -> None:
        self.client.close()


def is_redis(transport: Transport) -> bool:
    return transport.name == "redis"


__all__ = ["NAME", "RawRedisPeer", "is_redis"]

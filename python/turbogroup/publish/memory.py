"""Fast dispatch on kombu's in-memory transport (``memory://``).

kombu's virtual transports build one message dict per publish (body base64
encoded, ``delivery_info``, a uuid ``delivery_tag``) and hand it to the
channel's ``_put``. The Redis transport LPUSHes that dict JSON-encoded,
and the memory transport puts the dict itself on a ``queue.Queue``. So the
Redis fast path's messages serve here unchanged: each envelope the Rust
encoder writes for Redis is that dict, JSON-encoded, and parsing it back
(jiter) gives the dict the memory channel would have put. Options are
resolved as on Redis (``publish/redis.py``); the memory transport has no
priorities, so every message goes to its queue's one list.
"""

from __future__ import annotations

from queue import Queue
from typing import Any, cast

from jiter import from_json
from kombu.transport.memory import Channel as MemoryChannel

from turbogroup.publish.redis import RedisFastDispatch
from turbogroup.publish.redis_runs import Message, Run


class MemoryFastDispatch(RedisFastDispatch):
    """``RedisFastDispatch`` whose batches are put on in-memory queues."""

    pipelines = False  # nothing to wait for: each step is put at once

    def _list_key(self, queue: str, message: Message, keys: dict[tuple[str, Any], str]) -> str:
        del message, keys  # kombu's memory channel has one queue per name
        return queue

    def _prepare(self, runs: list[Run]) -> list[tuple[str, list[Any]]]:
        # The in-memory broker holds each message as a dict anyway, so the
        # dicts are built when sealed and sending only enqueues them.
        return [
            (run.key, [from_json(envelope) for envelope in self._envelopes(run)]) for run in runs
        ]

    def _push(  # type: ignore[override]
        self, prepared: list[tuple[str, list[Any]]], marker: str, again: bool
    ) -> None:
        del marker, again  # putting on an in-process queue cannot half-fail
        channel = cast(MemoryChannel, self.channel)
        for queue, messages in prepared:
            _put_all(channel._queue_for(queue), messages)


def _put_all(queue: Queue, items: list[Any]) -> None:
    """``queue.put(item)`` for each item, under one lock and one wake-up:
    what ``Queue.put`` does, through its documented subclass hook ``_put``
    (kombu's queues are unbounded, so nothing blocks)."""
    with queue.not_full:
        for item in items:
            queue._put(item)
        queue.unfinished_tasks += len(items)
        queue.not_empty.notify()


__all__ = ["MemoryChannel", "MemoryFastDispatch"]

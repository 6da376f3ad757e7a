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

from jiter import from_json
from kombu.transport.memory import Channel as MemoryChannel

from turbogroup.publish.redis import Message, RedisFastDispatch, Run


class MemoryFastDispatch(RedisFastDispatch):
    """``RedisFastDispatch`` whose batches are put on in-memory queues."""

    def _list_key(self, queue: str, message: Message, keys: dict[tuple[str, int], str]) -> str:
        del message, keys  # kombu's memory channel has one queue per name
        return queue

    def _push(self, runs: list[Run]) -> None:
        put = self.channel._put
        for queue, template, messages in runs:
            for envelope in self._envelopes(template, messages):
                put(queue, from_json(envelope))


__all__ = ["MemoryChannel", "MemoryFastDispatch"]

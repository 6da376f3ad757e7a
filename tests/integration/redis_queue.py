"""What the queue of a ``redis_add_env`` app holds, read straight from the
broker: the plain dispatch tests compare it with the results they got."""

from __future__ import annotations

import json

import redis


def queued_ids(broker: redis.Redis, queue: str) -> list[str]:
    """The ids of the queued messages, in group order."""
    headers = [json.loads(m)["headers"] for m in broker.lrange(queue, 0, -1)]
    return [h["id"] for h in sorted(headers, key=lambda h: h["group_index"])]

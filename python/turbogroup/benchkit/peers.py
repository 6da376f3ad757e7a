"""Peers a user might pick instead of Celery, on the same Redis: RQ's
``Queue.enqueue_many`` and Dramatiq's ``group(...).run()``. Each is timed
only when its package is importable; construction of the jobs/messages is
not timed, as for the groups."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from turbogroup.benchkit.timing import Progress, Timing, run_rounds, time_cap
from turbogroup.benchkit.transports import delete_redis_keys

PEERS = ("rq", "dramatiq")
DRAMATIQ_QUEUE = "bench"


def add(x: int, y: int) -> int:
    """The job both peers enqueue (RQ stores it by import path)."""
    return x + y


def available(peer: str) -> bool:
    return importlib.util.find_spec(peer) is not None


class RQPeer:
    def __init__(self, redis_url: str, tag: str) -> None:
        import redis
        from rq import Queue

        self.client = redis.Redis.from_url(redis_url)
        self.queue = Queue(f"{tag}-rq", connection=self.client)

    def build(self, n: int) -> list[Any]:
        return [self.queue.prepare_data(add, (i, i)) for i in range(n)]

    def dispatch(self, built: list[Any]) -> None:
        self.queue.enqueue_many(built)

    def depth(self) -> int:
        return self.queue.count

    def purge(self) -> None:
        self.queue.empty()

    def close(self) -> None:
        # Job hashes are keyed by job id, not queue: delete_jobs removes them.
        self.queue.delete(delete_jobs=True)
        self.client.close()


class DramatiqPeer:
    def __init__(self, redis_url: str, tag: str) -> None:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        self.redis_url, self.namespace = redis_url, f"{tag}-dramatiq"
        self.broker = RedisBroker(url=redis_url, namespace=self.namespace)
        self.actor = dramatiq.actor(
            add, broker=self.broker, queue_name=DRAMATIQ_QUEUE, actor_name="turbogroup_bench_add"
        )
        self.group_cls = dramatiq.group

    def build(self, n: int) -> Any:
        return self.group_cls([self.actor.message(i, i) for i in range(n)], broker=self.broker)

    def dispatch(self, built: Any) -> None:
        built.run()

    def depth(self) -> int:
        return int(self.broker.client.llen(f"{self.namespace}:{DRAMATIQ_QUEUE}"))

    def purge(self) -> None:
        self.broker.flush(DRAMATIQ_QUEUE)

    def close(self) -> None:
        self.broker.close()
        delete_redis_keys(self.redis_url, f"{self.namespace}*")


def make_peer(peer: str, redis_url: str, tag: str) -> RQPeer | DramatiqPeer:
    return RQPeer(redis_url, tag) if peer == "rq" else DramatiqPeer(redis_url, tag)


def run_peer(
    client: Any,
    peer: str,
    n: int,
    rounds: int,
    max_seconds: float | None,
    progress: Progress,
    broker: str = "redis",
) -> Timing:
    """Time ``client.dispatch`` (any peer with build/dispatch/depth/purge)."""

    def once() -> tuple[float, int | None]:
        client.purge()
        built = client.build(n)
        with time_cap(max_seconds):
            t0 = time.perf_counter()
            client.dispatch(built)
            elapsed = time.perf_counter() - t0
        return elapsed, client.depth()

    timing = run_rounds(n, rounds, max_seconds, once, f"{broker} N={n} {peer}", progress)
    client.purge()
    return timing

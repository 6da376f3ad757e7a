"""Client memory over repeated dispatch and collection of a 10k group.

Each round dispatches a 10,000-task group on a real Redis broker with a real
Redis result backend, stores the 10,000 results the way a worker would,
collects them with ``get()`` and deletes them. No worker runs: the messages
are deleted from the queue and the results are written straight into the
backend, so the round measures the client alone. The rounds run in a fresh
interpreter; Celery's own ``group`` runs a few rounds alongside, in another
one, for comparison (its figures are printed, never asserted).

Run ``python -m pytest tests/integration/test_memory.py -s`` to see the
figures.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.memprobe import MIB, growth, run_child, snapshot

pytestmark = pytest.mark.redis

TASKS = 10_000
ROUNDS = 100
# Celery dispatches at ~0.6 ms per task with a Redis backend, 8-28 s per
# round here depending on load: a few rounds are all the time allows, and
# they run beside ours. Fewer than 2 leaves Celery out.
CELERY_ROUNDS = int(os.environ.get("TURBOGROUP_MEMORY_CELERY_ROUNDS", "2"))
SAMPLE_EVERY = 10

# Bounds, from what the rounds measured on a 2-core machine (Python 3.11,
# glibc 2.36):
#
# - RSS climbs for the first rounds and then stays flat: rounds 10-100
#   +4 MiB, 50-100 +2 MiB; in a 300-round run 99-105 MiB from round 25 to
#   300. The climb is CPython's small-object allocator, not live memory:
#   each round allocates and frees tens of MiB of small objects, the few that
#   outlive it (the id buffer, caches, free lists) keep the 1 MiB arenas they
#   landed in, and the arena count grows until the free space in the kept
#   arenas covers a whole round. Live blocks, gc objects and malloc'd bytes
#   stay flat all along (asserted below).
# - The climb can go on past round 50: in later runs (2026-12-05) the
#   arenas kept went 42, 59, 66 at rounds 10, 50, 100, anonymous RSS
#   following them MiB for MiB, while the allocator's high-water mark (the
#   most arenas a round had mapped at once) stayed at 71-72. It is bounded
#   by that mark. So RSS over rounds 50-100 is counted less the arenas it
#   gained: 8 MiB beyond them is 16 bytes per task, less than the smallest
#   Python object, so a leak of anything per task outside the small-object
#   allocator (Rust's buffers, large objects, mappings) fails this.
MAX_RSS_STEADY = 8 * MIB
# - and the high-water mark must not rise: a round that needs ever more
#   small objects at once would (measured +1 arena from round 10 to 100).
MAX_PEAK_ARENAS = 4
ARENA_BYTES = 1 << 20  # CPython's arena size (3.10 and later)
# - Rounds 10 to 100: a loop of generator groups only settled later, with
#   +18 MiB between rounds 10 and 40, hence the room; 32 MiB is still ~37
#   bytes per task over 90 rounds (a kept AsyncResult is ~1 KiB).
MAX_RSS_AFTER_WARMUP = 32 * MIB
# - Live pymalloc blocks: measured +300 to +600 between rounds 10 and 100,
#   and ~+3 per round over 300 rounds (free lists and caches filling up to
#   their caps). One leaked object per task would be +900,000.
MAX_BLOCKS = 10_000
# - gc-tracked objects: measured exactly flat. One object kept per group
#   (say, a registry entry per group id) would be +90.
MAX_OBJECTS = 45
# - malloc'd bytes (Rust's buffers, Python objects over 512 bytes): measured
#   +0.1 MiB. Keeping the encoded messages would be ~1 KiB per task.
MAX_MALLOC = 4 * MIB


def _app(config: dict[str, Any]) -> tuple[Any, Any]:
    from celery import Celery

    prefix = config["prefix"]
    app = Celery("tg_memory", set_as_current=False)
    app.conf.update(
        broker_url=f"{config['redis_url']}/{REDIS_BROKER_DB}",
        result_backend=f"{config['redis_url']}/{REDIS_BACKEND_DB}",
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        task_default_queue=config["queue"],
    )

    @app.task(name="tg_memory.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    return app, add


def _store_successes(app: Any, result: Any, keys: list[bytes]) -> None:
    """Writes what a worker's ``mark_as_done`` would store for each child:
    the meta ``BaseKeyValueStoreBackend._store_result`` builds (task_id
    added to ``_get_result_meta``'s dict), encoded by the backend. One MSET
    instead of Celery's SET + PUBLISH per key: ``get()`` reads the same
    bytes, and 20,000 pipelined commands would add ~0.35 s to every round."""
    backend = app.backend
    date_done = app.now().isoformat()
    encoded = {}
    for i, (key, child) in enumerate(zip(keys, result.results)):
        meta = {
            "status": "SUCCESS",
            "result": 2 * i,
            "traceback": None,
            "children": [],
            "date_done": date_done,
            "task_id": child.id,
        }
        encoded[key] = backend.encode(meta)
    backend.client.mset(encoded)


def _client_state(app: Any) -> dict[str, int]:
    """What Celery keeps per task on the client between rounds: results
    waiting for a pub/sub message, and channels subscribed."""
    backend = app.backend
    consumer = backend.result_consumer
    pubsub = getattr(consumer, "_pubsub", None)
    return {
        "pending_results": sum(len(registry) for registry in backend._pending_results),
        "subscribed": len(getattr(consumer, "subscribed_to", ())),
        "pubsub_channels": len(pubsub.channels) if pubsub is not None else 0,
    }


def rounds(config: dict[str, Any]) -> dict[str, Any]:
    """The loop, in the child interpreter; returns the figures."""
    from celery.canvas import group as celery_group

    import turbogroup

    app, add = _app(config)
    group = turbogroup.group if config["impl"] == "turbogroup" else celery_group
    n = config["tasks"]
    expected = [2 * i for i in range(n)]
    broker = redis.Redis.from_url(f"{config['redis_url']}/{REDIS_BROKER_DB}")
    # kombu prefixes every key it writes, the queue's list included
    queue_key = config["prefix"] + config["queue"]
    task_key = app.backend.get_key_for_task
    samples: dict[int, dict[str, Any]] = {}
    seconds: list[float] = []
    try:
        for r in range(1, config["rounds"] + 1):
            started = time.monotonic()
            # Both ways users write it, on alternate rounds: a generator is
            # dispatched lazily (Celery's regen), a list all at once.
            if r % 2:
                tasks: Any = (add.s(i, i) for i in range(n))
            else:
                tasks = [add.s(i, i) for i in range(n)]
            result = group(tasks).apply_async()
            assert broker.llen(queue_key) == n
            broker.delete(queue_key)
            keys = [task_key(child.id) for child in result.results]
            _store_successes(app, result, keys)
            assert result.get(timeout=30) == expected
            # What result.forget() deletes, in one command: forget() sends one
            # DEL per child (~1.5 s a round) and is Celery's code, not ours.
            app.backend.client.delete(*keys)
            del result, tasks, keys
            seconds.append(time.monotonic() - started)
            if r == 1 or r % config["sample_every"] == 0 or r == config["rounds"]:
                samples[r] = {**snapshot(), **_client_state(app)}
    finally:
        broker.close()
    return {"impl": config["impl"], "samples": samples, "seconds": seconds}


def _delete_prefixed(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _run(config: dict[str, Any]) -> dict[str, Any]:
    try:
        return run_child("tests.integration.test_memory", config, timeout=840)
    finally:
        for db in (REDIS_BROKER_DB, REDIS_BACKEND_DB):
            _delete_prefixed(f"{config['redis_url']}/{db}", config["prefix"])


def _report(figures: dict[str, Any]) -> None:
    samples = {int(r): s for r, s in figures["samples"].items()}
    seconds = figures["seconds"]
    print(
        f"\n{figures['impl']}: {len(seconds)} rounds of {TASKS:,} tasks, "
        f"{sum(seconds):.0f} s ({sum(seconds) / len(seconds):.2f} s per round)"
    )
    print(
        "  round   RSS MiB   live blocks   gc objects   malloc MiB   arenas (peak)"
        "   pending   pub/sub channels"
    )
    for r, s in sorted(samples.items()):
        malloc = "n/a" if s["malloc"] is None else f"{s['malloc'] / MIB:.1f}"
        arenas = "n/a" if s["arenas"] is None else f"{s['arenas']} ({s['arenas_peak']})"
        print(
            f"  {r:>5}   {s['rss'] / MIB:7.1f}   {s['blocks']:>11,}   {s['objects']:>10,}"
            f"   {malloc:>10}   {arenas:>13}   {s['pending_results']:>7,}"
            f"   {s['pubsub_channels']:>16,}"
        )


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_repeated_10k_group_dispatch_and_collect_keeps_memory_flat(redis_url):
    def config(impl: str, n_rounds: int, sample_every: int) -> dict[str, Any]:
        name = f"tg-memory-{impl}-{uuid.uuid4().hex[:10]}"
        return {
            "impl": impl,
            "rounds": n_rounds,
            "tasks": TASKS,
            "sample_every": sample_every,
            "redis_url": redis_url,
            "prefix": f"{name}:",
            "queue": name,
        }

    # Side by side: they share nothing but Redis, and the test takes as long
    # as the turbogroup rounds instead of the sum of both.
    with ThreadPoolExecutor(2) as pool:
        ours = pool.submit(_run, config("turbogroup", ROUNDS, SAMPLE_EVERY))
        celerys = None
        if CELERY_ROUNDS > 1:
            celerys = pool.submit(_run, config("celery", CELERY_ROUNDS, 1))
        figures = ours.result()
        celery_figures = celerys.result() if celerys is not None else None

    _report(figures)
    samples = {int(r): s for r, s in figures["samples"].items()}
    warm, settled, end = samples[10], samples[50], samples[ROUNDS]
    print(
        f"turbogroup RSS growth: rounds 10-{ROUNDS} "
        f"{(end['rss'] - warm['rss']) / MIB:+.1f} MiB, rounds 50-{ROUNDS} "
        f"{(end['rss'] - settled['rss']) / MIB:+.1f} MiB"
    )
    if celery_figures is not None:
        _report(celery_figures)
        celery_samples = {int(r): s for r, s in celery_figures["samples"].items()}
        grew_mib = (celery_samples[CELERY_ROUNDS]["rss"] - celery_samples[1]["rss"]) / MIB
        print(
            f"celery RSS growth: rounds 1-{CELERY_ROUNDS} {grew_mib:+.1f} MiB "
            f"({grew_mib / (CELERY_ROUNDS - 1):+.1f} MiB per round)"
        )

    kept = 0  # RSS in the small-object allocator's arenas gained since round 50
    if end["arenas"] is not None and settled["arenas"] is not None:
        kept = max(0, end["arenas"] - settled["arenas"]) * ARENA_BYTES
        assert end["arenas_peak"] - warm["arenas_peak"] <= MAX_PEAK_ARENAS, (warm, end)
    assert end["rss"] - settled["rss"] - kept <= MAX_RSS_STEADY, (settled, end)
    assert end["rss"] - warm["rss"] <= MAX_RSS_AFTER_WARMUP
    grew = growth(warm, end)
    assert grew["blocks"] <= MAX_BLOCKS, grew
    assert grew["objects"] <= MAX_OBJECTS, grew
    if grew["malloc"] is not None:
        assert grew["malloc"] <= MAX_MALLOC, grew
    # Nothing is left waiting for a pub/sub message, nothing subscribed.
    assert (end["pending_results"], end["subscribed"], end["pubsub_channels"]) == (0, 0, 0)


if __name__ == "__main__":
    print(json.dumps(rounds(json.loads(sys.argv[1]))))

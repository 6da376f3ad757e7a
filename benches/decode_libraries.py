"""turbogroup's result decoder against the libraries built for JSON -> Python.

turbogroup decodes result payloads with jiter (``collect/decode.py``); this
keeps that choice honest against orjson and the standard library.

    pip install jiter orjson
    python benches/decode_libraries.py [--n 100000] [--rounds 5]

The payloads are what Celery's Redis backend stores for N finished tasks
(``backend.encode`` of the meta ``store_result`` writes: status, result,
traceback, children, date_done, task_id, group_id, group_index), with a
mix of result values a group's tasks return: ints, floats, short and long
strings, lists and dicts. Each decoder must give exactly ``json.loads``'s
objects for every payload (checked before timing); a library that cannot
decode a payload (orjson refuses NaN) is charged its fallback. The cyclic
GC is paused while timing, as the collector pauses it. Prints ms
per batch, best and median of the rounds, and each one's ratio to ours.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from turbogroup.collect.decode import decode_json_batch


def result_value(i: int) -> Any:
    kind = i % 6
    if kind == 0:
        return i
    if kind == 1:
        return i / 7
    if kind == 2:
        return f"item-{i}"
    if kind == 3:
        return "x" * 200 + str(i)
    if kind == 4:
        return [i, i + 1, "a", None, True]
    return {"id": i, "name": f"n{i}", "tags": ["a", "b"], "score": i * 0.5}


def payloads(n: int) -> list[bytes]:
    group_id = str(uuid.uuid4())
    out = []
    for i in range(n):
        meta = {
            "status": "SUCCESS",
            "result": result_value(i),
            "traceback": None,
            "children": [],
            "date_done": "2026-12-02T17:00:00.123456+00:00",
            "task_id": str(uuid.uuid4()),
            "group_id": group_id,
            "group_index": i,
        }
        out.append(json.dumps(meta).encode())
    return out


def ours(batch: list[bytes]) -> list[Any]:
    values, needs_python = decode_json_batch(batch)
    for i in needs_python:
        values[i] = json.loads(batch[i])
    return values


def with_fallback(loads: Callable[[bytes], Any]) -> Callable[[list[bytes]], list[Any]]:
    """A library's loads per payload; kombu-tagged payloads and those it
    refuses go to ``json.loads``, as ours send them to kombu."""

    def decode(batch: list[bytes]) -> list[Any]:
        out = []
        for p in batch:
            if b'"__type__"' in p:
                out.append(json.loads(p))
                continue
            try:
                out.append(loads(p))
            except ValueError:
                out.append(json.loads(p))
        return out

    return decode


def decoders() -> dict[str, Callable[[list[bytes]], list[Any]]]:
    found: dict[str, Callable[[list[bytes]], list[Any]]] = {
        "turbogroup (jiter)": ours,
        "json.loads (stdlib)": lambda batch: [json.loads(p) for p in batch],
    }
    try:
        import jiter

        found["jiter.from_json"] = with_fallback(jiter.from_json)
    except ImportError:
        print("jiter is not installed: skipped")
    try:
        import orjson

        found["orjson.loads"] = with_fallback(orjson.loads)
    except ImportError:
        print("orjson is not installed: skipped")
    return found


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 vs 1.0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    batch = payloads(opts.n)
    want = [json.loads(p) for p in batch]
    times: dict[str, list[float]] = {}
    for name, decode in decoders().items():
        got = decode(batch)
        if not all(same(g, w) for g, w in zip(got, want)):
            print(f"{name}: NOT exact, excluded")
            continue
        times[name] = []
        for _ in range(opts.rounds):
            # The collector pauses the cyclic GC around a batch this size
            # (turbogroup._gc): so does every decoder here.
            gc.collect()
            gc.disable()
            started = time.perf_counter()
            decode(batch)
            times[name].append((time.perf_counter() - started) * 1000)
            gc.enable()
    base = min(times["turbogroup (jiter)"])
    print(
        f"\nDecoding {opts.n:,} stored result metas, ms per batch, best (median) of {opts.rounds}"
    )
    print(f"{'decoder':<26}{'ms':>18}{'time / ours':>14}")
    for name, ts in times.items():
        best = min(ts)
        print(f"{name:<26}{best:>9.1f} ({statistics.median(ts):>6.1f}){best / base:>13.2f}x")


if __name__ == "__main__":
    main()

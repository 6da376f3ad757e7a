"""Leak check of the pyo3 binding, ``turbogroup._core``.

Every function and class of the binding is called many thousands of times in
a fresh interpreter, on its success paths and its error paths (exceptions
raised in Rust, and Python exceptions passing through Rust), and what is
still allocated afterwards must be what was allocated before. A reference
the binding forgets to release shows up as live Python objects (or, for an
object the test keeps passing in, as a higher ``sys.getrefcount``); memory
Rust forgets to free shows up in malloc's in-use bytes.

Run ``python -m tests.unit.test_core_leaks`` to see the figures.
"""

from __future__ import annotations

import gc
import json
import sys
import weakref
from typing import Any

from tests.memprobe import MIB, growth, run_child, snapshot
from tests.unit import core_leak_encoding as encoding
from tests.unit import core_leak_scenarios as calls
from tests.unit.core_leak_scenarios import Scenario

WARMUP = 500
# Iterations per measured loop. One leaked object per iteration would leave
# ITERATIONS live blocks; one leaked malloc chunk (32 bytes at least) would
# leave 32 * ITERATIONS bytes.
ITERATIONS = 10_000
# What may stay behind without being a leak: interned strings, a list or
# dict that grew once (CPython's method cache is emptied before each
# snapshot, see tests/memprobe.py). Measured on 3.10, 3.11 and 3.13: 7-18
# blocks and at most ~3 KiB of malloc per scenario.
MAX_BLOCKS = ITERATIONS // 100
MAX_MALLOC = 4 * ITERATIONS  # bytes: an eighth of a 32-byte chunk per call
# RSS only catches a big leak (a few pages would already be allocator
# noise), but it is what a user sees; measured 0-350 KiB per scenario.
MAX_RSS = 2 * MIB


SCENARIOS = (
    calls.ids_scenario,
    calls.big_id_batch_scenario,
    calls.unroll_scenario,
    calls.barrier_scenario,
    encoding.encode_scenario,
    encoding.alike_encode_scenario,
    encoding.decode_scenario,
    calls.stand_ins_scenario,
    calls.alike_queue_scenario,
)


def _refcounts(objects: list[Any]) -> list[int]:
    return [sys.getrefcount(obj) for obj in objects]


def measure(scenario: Scenario, warmup: int, iterations: int) -> dict[str, Any]:
    step = scenario.step
    for _ in range(warmup):
        step()
    before = snapshot()
    # After the collection: the last iteration's garbage may still hold some.
    refcounts = _refcounts(scenario.watched)
    for _ in range(iterations):
        step()
    after = snapshot()
    moved = [
        (repr(obj)[:60], old, new)
        for obj, old, new in zip(scenario.watched, refcounts, _refcounts(scenario.watched))
        if new != old
    ]
    return {
        "name": scenario.name,
        "iterations": iterations,
        "growth": growth(before, after),
        "refcounts_moved": moved,
    }


def main(config: dict[str, Any]) -> None:
    figures = []
    for make in SCENARIOS:
        scenario = make()
        iterations = config["iterations"]
        if "5000" in scenario.name:
            iterations //= 10  # each call is 5000 ids
        figures.append(measure(scenario, config["warmup"], iterations))
    print(json.dumps({"scenarios": figures}))


def test_core_functions_do_not_leak():
    figures = run_child(
        "tests.unit.test_core_leaks",
        {"warmup": WARMUP, "iterations": ITERATIONS},
        timeout=240,
    )["scenarios"]
    print("\n_core leak check: growth over the measured loop (after warm-up)")
    for fig in figures:
        g = fig["growth"]
        malloc = "n/a" if g["malloc"] is None else f"{g['malloc']:+,} B"
        print(
            f"  {fig['name']:<38} x{fig['iterations']:>6}: blocks {g['blocks']:+,}, "
            f"gc objects {g['objects']:+,}, malloc in use {malloc}, "
            f"RSS {g['rss'] / 1024:+,.0f} KiB"
        )
    for fig in figures:
        g = fig["growth"]
        assert fig["refcounts_moved"] == [], fig
        assert g["blocks"] <= MAX_BLOCKS, fig
        assert g["objects"] <= MAX_BLOCKS, fig
        if g["malloc"] is not None:
            assert g["malloc"] <= MAX_MALLOC, fig
        assert g["rss"] <= MAX_RSS, fig


def _cycle_through(cls: type) -> weakref.ref:
    """A barrier whose callback refers back to it (an object holding a
    barrier and registering its own method is the everyday case); returns
    a weak reference to an object only that cycle keeps alive."""

    class Owner:
        def on_ready(self, *args: Any) -> None:
            pass

    owner = Owner()
    owner.barrier = cls()
    owner.barrier.then(owner.on_ready)
    return weakref.ref(owner)


def test_vine_barrier_cycles_are_collected():
    from vine import barrier

    ref = _cycle_through(barrier)
    gc.collect()
    assert ref() is None


def test_turbogroup_barrier_cycles_are_collected():
    from turbogroup.barrier import barrier

    ref = _cycle_through(barrier)
    gc.collect()
    assert ref() is None


if __name__ == "__main__":
    main(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"warmup": 500, "iterations": 10_000})

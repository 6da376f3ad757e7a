"""Concurrent dispatch from threads, repeated in fresh processes.

A crash kills the interpreter, so each run is a subprocess and a death by
signal fails the test with the run's output (faulthandler's tracebacks).
The runs are fresh processes because the crash these pin happened on a
process's first barriers only (tests/stress/first_barriers.py). Some runs
are hostile (collections and thread switches as often as CPython allows),
and some run under ``-X dev`` with ``PYTHONMALLOC=debug``, whose allocator
poisons freed and uninitialised memory, so a use-after-free shows as a
crash or a failed check instead of luck.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 180
# Two runs at a time: one per core of the machine the suite is sized for.
PARALLEL = 2


class Spec(NamedTuple):
    module: str
    args: tuple[str, ...] = ()
    debug: bool = False


def run_all(specs: list[Spec]) -> list[str]:
    """Runs every spec; returns a description of each failed run."""

    def one(spec: Spec) -> str | None:
        env = dict(os.environ)
        cmd = [sys.executable]
        if spec.debug:
            env["PYTHONMALLOC"] = "debug"
            cmd += ["-X", "dev"]
        cmd += ["-m", spec.module, *spec.args]
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            return f"{spec}: did not finish in {RUN_TIMEOUT} s"
        if proc.returncode == 0:
            return None
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else "failed"
        return f"{spec}: {how}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"

    with ThreadPoolExecutor(PARALLEL) as pool:
        return [r for r in pool.map(one, specs) if r is not None]


def test_first_barriers_made_by_eight_threads_at_once_under_constant_collection():
    specs = [Spec("tests.stress.first_barriers") for _ in range(20)]
    specs += [Spec("tests.stress.first_barriers", debug=True) for _ in range(4)]
    failures = run_all(specs)
    assert not failures, f"{len(failures)} of {len(specs)} runs failed:\n" + "\n".join(failures)


@pytest.mark.redis
def test_eight_threads_dispatching_groups_one_after_another(redis_url):
    """The shape that segfaulted in 3 of 6 runs: 8 threads x 5 groups of
    2,000 through one app, every group's messages checked. Plus a variant
    with generator groups and one where other threads store and collect
    (``get``, ``completed_count``) the groups as they are dispatched."""
    script = "tests.stress.dispatch_threads"
    specs = [Spec(script, ("plain", redis_url)) for _ in range(8)]
    specs += [Spec(script, ("plain", redis_url, "--hostile")) for _ in range(4)]
    specs += [Spec(script, ("generator", redis_url)) for _ in range(3)]
    specs += [Spec(script, ("collect", redis_url)) for _ in range(3)]
    specs += [Spec(script, ("sentry", redis_url)) for _ in range(2)]
    specs += [Spec(script, ("plain", redis_url), debug=True)]
    specs += [Spec(script, ("collect", redis_url, "--hostile"), debug=True)]
    failures = run_all(specs)
    assert not failures, f"{len(failures)} of {len(specs)} runs failed:\n" + "\n".join(failures)

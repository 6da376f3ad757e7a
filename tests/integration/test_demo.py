"""``python -m turbogroup demo``, the first thing a newcomer runs: correct
results, the memory transport's fast path doing the dispatch, clean output."""

from __future__ import annotations

import subprocess
import sys


def test_demo_prints_correct_results_a_ratio_and_no_warnings():
    proc = subprocess.run(
        [sys.executable, "-m", "turbogroup", "demo", "-n", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "all 1000 results correct and in order: yes" in out
    assert "ratio (celery/turbo)" in out
    assert "python -m turbogroup bench" in out
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stderr

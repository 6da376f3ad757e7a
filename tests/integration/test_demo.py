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


def test_demo_backend_keeps_more_results_than_celerys_memory_cache():
    # Celery's cache+memory:// keeps 5,000 results per process: a 10,000
    # task demo lost results before get() read them and never completed.
    from turbogroup.demo import make_app

    app = make_app()
    try:
        backend = app.backend
        ids = [f"demo-keep-{i}" for i in range(6000)]
        for i, task_id in enumerate(ids):
            backend.store_result(task_id, i, "SUCCESS")
        metas = dict(backend.get_many(ids, timeout=5, interval=0.01))
        assert [metas[t]["result"] for t in ids] == list(range(6000))
        for task_id in ids:
            backend.forget(task_id)
    finally:
        app.close()

"""``python -m turbogroup bench`` run in-process on a tiny group over the
in-memory transport: no broker needed, a few seconds."""

from __future__ import annotations

import importlib.util
import time

import pytest

from turbogroup import bench
from turbogroup.__main__ import main
from turbogroup.benchkit.timing import RunTimeout, Timing, time_cap

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TINY = ["bench", "--sizes", "50", "--transports", "memory", "--rounds", "1", "--no-collect"]


def rows_for(out: str, transport: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith(transport + " ")]


def test_bench_prints_celery_and_turbogroup_per_task_times_and_writes_the_plot(tmp_path, capsys):
    plot = tmp_path / "x.png"
    assert main([*TINY, "--plot", str(plot)]) == 0
    out = capsys.readouterr().out

    assert "Dispatch of a pre-built group" in out
    dispatch_row = next(r for r in rows_for(out, "memory") if r[1] == "50")
    # memory 50 <celery best> (<median>) <turbo best> (<median>) <ratio>x 50 / 50
    assert float(dispatch_row[2]) > 0
    assert float(dispatch_row[4]) > 0
    assert dispatch_row[6].endswith("x")
    assert dispatch_row[-3:] == ["50", "/", "50"], "every message queued when apply_async returns"
    assert "Client peak RSS growth during one N=50 dispatch" in out
    assert "Collection of N stored results" not in out
    if HAS_MATPLOTLIB:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib is not installed" in out


def test_bench_without_matplotlib_explains_and_exits_zero(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "matplotlib_available", lambda: False)
    plot = tmp_path / "x.png"
    assert main([*TINY, "--no-rss", "--plot", str(plot)]) == 0
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not plot.exists()


def test_bench_deletes_its_queue_from_the_memory_transport(tmp_path):
    from kombu.transport.memory import Channel

    before = set(Channel.queues)
    main([*TINY, "--no-rss", "--plot", ""])
    assert not {q for q in set(Channel.queues) - before if q.startswith("tgbench-")}


def test_a_size_predicted_to_pass_max_seconds_is_skipped_without_running():
    previous = Timing(1000, seconds=[0.5])  # 500 µs per task
    assert bench.skip_by_prediction(previous, 100_000, cap=10.0).skipped.startswith("estimated")
    assert bench.skip_by_prediction(previous, 10_000, cap=10.0) is None
    assert bench.skip_by_prediction(previous, 100_000, cap=None) is None


def test_time_cap_interrupts_a_run_that_takes_too_long():
    t0 = time.monotonic()
    with pytest.raises(RunTimeout), time_cap(0.05):
        while True:
            time.sleep(0.01)
    assert time.monotonic() - t0 < 1

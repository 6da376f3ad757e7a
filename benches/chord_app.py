"""The app that ``benches/chord_latency.py`` runs a worker for (its queue,
database numbers and key prefix come from the environment)."""

from __future__ import annotations

import os

from celery import Celery

REDIS = os.environ.get("TG_CHORD_REDIS", "redis://127.0.0.1:6379")
PREFIX = os.environ.get("TG_CHORD_PREFIX", "tg-chord:")

app = Celery("tg_chord")
app.conf.update(
    broker_url=f"{REDIS}/10",
    result_backend=f"{REDIS}/12",
    broker_transport_options={"global_keyprefix": PREFIX},
    result_backend_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=f"{PREFIX}celery",
    result_expires=3600,
    worker_hijack_root_logger=False,
)


@app.task(name="tg_chord.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tg_chord.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)

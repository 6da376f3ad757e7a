"""The app that ``benches/chord_latency.py`` runs a worker for (its queue,
database numbers, key prefix and result backend come from the
environment). With TG_CHORD_INSTALL=1 the worker runs turbogroup.install(),
as a user's worker does when the app module calls it."""

from __future__ import annotations

import os

from celery import Celery

import turbogroup

REDIS = os.environ.get("TG_CHORD_REDIS", "redis://127.0.0.1:6379")
PREFIX = os.environ.get("TG_CHORD_PREFIX", "tg-chord:")
# A SQLAlchemy URL: results in Celery's database backend, tables of the run.
DATABASE = os.environ.get("TG_CHORD_DATABASE", "")
_NAME = PREFIX[:-1].replace("-", "_")  # a plain SQL identifier
TABLES = {"task": f"{_NAME}_task", "group": f"{_NAME}_group"}

app = Celery("tg_chord")
app.conf.update(
    broker_url=f"{REDIS}/10",
    broker_transport_options={"global_keyprefix": PREFIX},
    task_default_queue=f"{PREFIX}celery",
    result_expires=3600,
    worker_hijack_root_logger=False,
)
if DATABASE:
    app.conf.update(result_backend=f"db+{DATABASE}", database_table_names=TABLES)
else:
    app.conf.update(
        result_backend=f"{REDIS}/12",
        result_backend_transport_options={"global_keyprefix": PREFIX},
    )
if os.environ.get("TG_CHORD_INSTALL") == "1":
    turbogroup.install()


@app.task(name="tg_chord.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tg_chord.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)

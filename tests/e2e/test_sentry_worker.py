"""Worker-side trace continuation with sentry-sdk's CeleryIntegration, a
real worker, Redis broker and backend: each task's transaction on the
worker continues the ``sentry-trace`` its own message carries, in the
dispatching transaction's trace, with turbogroup's group exactly as with
Celery's.

Each run is a fresh interpreter (``sentry_worker.py``): the integration
patches Celery for the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB
from tests.e2e.conftest import _delete_prefixed

pytest.importorskip("sentry_sdk")
pytestmark = [pytest.mark.worker, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
N = 30


def run(redis_url: str, impl: str) -> dict:
    prefix = f"tg-sentry-worker-{uuid.uuid4().hex[:10]}:"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tests.e2e.sentry_worker", redis_url, prefix, impl, str(N)],
            cwd=ROOT, capture_output=True, text=True, timeout=180, check=True,
        )  # fmt: skip
    finally:
        for db in (REDIS_BROKER_DB, REDIS_BACKEND_DB):
            _delete_prefixed(f"{redis_url}/{db}", prefix)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("impl", ["celery", "turbogroup"])
def test_each_task_continues_its_own_messages_trace(redis_url, impl):
    side = run(redis_url, impl)
    assert side["values"] == [i + i for i in range(N)]
    assert len(side["worker"]) == N, "a task ran without a transaction of its own"
    for task_id, header in zip(side["ids"], side["headers"]):
        trace_id, span_id = header.split("-")[:2]
        assert trace_id == side["trace_id"]  # the dispatching transaction's trace
        worker = side["worker"][task_id]
        assert worker["trace_id"] == side["trace_id"]
        assert worker["parent_span_id"] == span_id  # this message's own span
        assert worker["name"] == "tg_sentry_worker.add"
    assert len({h.split("-")[1] for h in side["headers"]}) == N
    if impl == "turbogroup":
        # one bulk dispatch, every message by the encoder inside the wrappers
        assert side["reports"] == [{"by_engine": N, "by_celery": 0}]
    else:
        assert side["reports"] == []

"""ddtrace's Celery integration (``patch(celery=True)``) connects
``before_task_publish``/``after_task_publish`` receivers: a ``celery.apply``
span per task, and with distributed tracing on its trace headers in the
message's ``headers`` header. With turbogroup's group the tracer sees what
it sees with Celery's: one finished span per message, each a child of the
dispatching span and tagged with its message's task id, that span's id in
the message's headers, the same header names; and the encoder builds every
message (ddtrace only adds headers).

Each run is a fresh interpreter (``ddtrace_dispatch.py``): the patch is
process-wide, and a receiver on the publish signals changes other tests'
paths.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ddtrace")
pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
N = 150
REDIS_DB = 13


def run(redis_url: str, impl: str) -> dict:
    queue = f"tg-ddtrace-{uuid.uuid4().hex[:10]}"
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.ddtrace_dispatch",
         f"{redis_url}/{REDIS_DB}", queue, impl, str(N)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_every_message_carries_its_ddtrace_span_as_with_celery(redis_url):
    celery = run(redis_url, "celery")
    turbo = run(redis_url, "turbogroup")
    for side in (celery, turbo):
        spans = {s["task_id"]: s for s in side["spans"]}
        assert len(side["headers"]) == len(spans) == N
        for headers in side["headers"]:
            span = spans[headers["id"]]
            assert span["finished"]  # after_task_publish came for it
            assert span["parent_id"] == side["root"]["span_id"]
            assert span["trace_id"] == side["root"]["trace_id"]
            trace = headers["headers"]
            assert trace["x-datadog-parent-id"] == span["span_id"]
            assert trace["traceparent"].split("-")[2] == f"{int(span['span_id']):016x}"
    assert [sorted(h) for h in turbo["headers"]] == [sorted(h) for h in celery["headers"]]
    assert [sorted(h["headers"]) for h in turbo["headers"]] == [
        sorted(h["headers"]) for h in celery["headers"]
    ]
    assert turbo["reports"] == [{"by_engine": N, "by_celery": 0}]
    assert celery["reports"] == []

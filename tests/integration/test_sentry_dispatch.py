"""sentry-sdk's CeleryIntegration wraps ``Task.apply_async``,
``Celery.send_task`` and kombu's ``Producer.publish`` to put ``sentry-trace``
and ``baggage`` in every message. With turbogroup installed, whichever was
imported first, those wrappers run for each child and every message carries
the headers Celery's own group gives it, while the dispatch stays one bulk
dispatch (the report counts every message as built by Celery's publish,
none by the encoder, which would skip the wrappers).

Each run is a fresh interpreter (``sentry_dispatch.py``): the integration
patches Celery and kombu for the whole process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytest.importorskip("sentry_sdk")
pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]
N = 200
REDIS_DB = 13


def run(redis_url: str, order: str, impl: str) -> dict:
    queue = f"tg-sentry-{uuid.uuid4().hex[:10]}"
    out = subprocess.run(
        [sys.executable, "-m", "tests.integration.sentry_dispatch",
         f"{redis_url}/{REDIS_DB}", queue, order, impl, str(N)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.parametrize("order", ["sentry-first", "turbogroup-first"])
def test_every_message_carries_sentrys_headers_as_with_celery(redis_url, order):
    celery = run(redis_url, order, "celery")
    turbo = run(redis_url, order, "turbogroup")
    assert turbo["args"] == celery["args"] == [[i, i] for i in range(N)]
    for side in (celery, turbo):
        traces = [h["sentry-trace"].split("-") for h in side["headers"]]
        assert len(traces) == N
        # one span per child, all in the dispatching transaction's trace
        assert {t[0] for t in traces} == {side["trace_id"]}
        assert len({t[1] for t in traces}) == N
        assert all(f"sentry-trace_id={side['trace_id']}" in h["baggage"] for h in side["headers"])
        # Sentry also copies them into the nested "headers" header
        assert all(h["headers"]["sentry-trace"] == h["sentry-trace"] for h in side["headers"])
    assert [sorted(h) for h in turbo["headers"]] == [sorted(h) for h in celery["headers"]]
    # batched by Celery's publish, none by the encoder (which skips wrappers)
    assert turbo["reports"] == [{"by_engine": 0, "by_celery": N}]
    assert celery["reports"] == []

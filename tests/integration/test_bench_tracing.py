"""``python -m turbogroup bench --tracing``: each tracer's row is timed on
both sides, every message carried the tracer's headers (a round that did
not is reported as failed, not timed), and says who built the messages."""

from __future__ import annotations

import re
import uuid

import pytest

from turbogroup.benchkit import tracing

pytest.importorskip("sentry_sdk")
pytest.importorskip("opentelemetry.instrumentation.celery")
pytestmark = pytest.mark.redis
N = 60


def test_each_tracer_is_timed_on_both_sides(redis_url):
    rows = tracing.run_tracing(N, 1, f"{redis_url}/13", f"tg-tracing-{uuid.uuid4().hex[:8]}")
    assert [row[0] for row in rows] == list(tracing.TRACERS)
    for tracer, n, celery_s, turbo_s, ratio, built in rows:
        assert n == str(N)
        assert float(celery_s) > 0 and float(turbo_s) > 0, (tracer, celery_s, turbo_s)
        assert re.fullmatch(r"\d+\.\dx", ratio), ratio  # no failed round
        assert built == "Celery's path" or sum(map(int, built.split("/"))) == N
    # Sentry's wrappers run per child: Celery's publish builds them, batched
    assert rows[1][5] == f"0/{N}"

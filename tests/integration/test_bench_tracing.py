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


@pytest.mark.amqp
def test_each_tracer_is_timed_on_both_sides_and_brokers(redis_url, amqp_url):
    brokers = [f"{redis_url}/13", amqp_url]
    rows = tracing.run_tracing(N, 1, brokers, f"tg-tracing-{uuid.uuid4().hex[:8]}")
    assert [row[:2] for row in rows] == [
        [tracer, broker] for tracer in tracing.TRACERS for broker in ("redis", "amqp")
    ]
    for tracer, broker, n, celery_s, turbo_s, ratio, alone_s, bound, built in rows:
        assert n == str(N)
        assert float(celery_s) > 0 and float(turbo_s) > 0, (tracer, broker, celery_s, turbo_s)
        assert re.fullmatch(r"\d+\.\dx", ratio), ratio  # no failed round
        # the tracer alone takes less than either side, which both run it
        assert 0 < float(alone_s) < min(float(celery_s), float(turbo_s)), (tracer, alone_s)
        # (from the unrounded seconds)
        assert float(bound[:-1]) == pytest.approx(float(celery_s) / float(alone_s), rel=0.1)
        # batched: one bulk dispatch on each broker; turbogroup builds every
        # message (the encoder on Redis, kombu's publish of its resolved
        # messages on RabbitMQ), between OpenTelemetry's receivers or inside
        # Sentry's wrappers
        assert built == f"{N}/0", (tracer, broker, built)

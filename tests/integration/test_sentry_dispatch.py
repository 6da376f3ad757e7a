"""sentry-sdk's CeleryIntegration wraps ``Task.apply_async``,
``Celery.send_task`` and kombu's ``Producer.publish`` to put ``sentry-trace``
and ``baggage`` in every message. With turbogroup installed, whichever was
imported first, those wrappers run for each child around the encoder's
message (``publish/wrapped.py``; the report counts every message as built
by the encoder): every message is Celery's, bytes and order, but for the
ids and times that differ between any two runs, and the transaction has
Celery's spans, three per child, the one whose id is in the message's
``sentry-trace`` the parent of the message's publish span.

Each run is a fresh interpreter (``sentry_dispatch.py``): the integration
patches Celery and kombu for the whole process.
"""

from __future__ import annotations

import json
import re
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
    assert [_normalized(m) for m in turbo["raw"]] == [_normalized(m) for m in celery["raw"]]
    assert _canonical(turbo["spans"]) == _canonical(celery["spans"])
    for side in (celery, turbo):
        spans = side["spans"]
        assert len(spans) == 3 * N
        for i, headers in enumerate(side["headers"]):
            apply_async, send_task, publish = spans[3 * i : 3 * i + 3]
            assert headers["sentry-trace"].split("-")[1] == send_task["span_id"]
            assert publish["parent_span_id"] == send_task["span_id"]
            assert send_task["parent_span_id"] == apply_async["span_id"]
            assert publish["data"]["messaging.message.id"] == headers["id"]
    # every message by the encoder, inside the wrappers
    assert turbo["reports"] == [{"by_engine": N, "by_celery": 0}]
    assert celery["reports"] == []


# What differs between any two runs: ids, trace and span ids, Sentry's
# sampling draw, the time a task was queued, the process and thread ids
# and the run's own queue.
_RANDOM = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{32}\b"
    r"|\b[0-9a-f]{16}\b|(?<=sentry-sample_rand=)[0-9.]+|(?<=enqueued-time\": )[0-9.e+-]+"
    r"|(?<=\"origin\": \"gen)[0-9]+(?=@)|(?<=tg-sentry-)[0-9a-f]{10}"
    r'|(?<="thread.id": ")[0-9]+'
)


def _normalized(raw: str) -> str:
    return _RANDOM.sub("<random>", raw)


def _canonical(spans: list[dict]) -> list[str]:
    """The spans as JSON, each id replaced by its order of first appearance."""
    seen: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        return seen.setdefault(match.group(0), f"<{len(seen)}>")

    return [_RANDOM.sub(placeholder, json.dumps(span)) for span in spans]

"""``python -m turbogroup bench --shapes``: each shape is timed on both
sides with every message queued, says who built the messages, and the
plain groups' rows carry the broker's limit (raw-redis) for the same
children, dispatched the same way."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from turbogroup.benchkit import shapes
from turbogroup.benchkit.transports import Transport

pytestmark = pytest.mark.redis
N = 40
REPEAT = 5


def _by_name(name: str) -> shapes.Shape:
    (shape,) = [s for s in shapes.SHAPES if s.name == name]
    return shape


def test_plain_groups_are_timed_beside_the_broker_limit(redis_url):
    tag = f"tg-shapes-{uuid.uuid4().hex[:8]}"
    transport = Transport("redis", f"{redis_url}/13", f"{tag}-redis")
    small = dataclasses.replace(_by_name(f"{shapes.SMALL_REPEAT} groups of 10"), repeat=REPEAT)
    chord = _by_name("chord")
    picked = (_by_name("group"), small, chord)
    results = shapes.run_shapes(transport, f"{redis_url}/13", tag, N, 1, lambda line: None, picked)

    group, tens, chords = results
    for result, children in ((group, N), (tens, 10 * REPEAT), (chords, N)):
        # every child reached the queue, on each side and from the peer
        assert result.celery.queued == [children], result.shape.name
        assert result.turbogroup.queued == [children], result.shape.name
        # the fast path built each dispatch's messages, Celery's publish none
        per_dispatch = children // result.shape.repeat
        assert (result.by_engine, result.by_celery) == (per_dispatch, 0), result.shape.name
    for result in (group, tens):
        assert result.raw is not None and result.raw.queued == result.celery.queued
    assert chords.raw is None  # a chord is not a plain group: no peer sends it

    rows = {row[0]: row for row in shapes.shape_rows(results)}
    assert len(shapes.HEADER) == len(rows["group"])
    limit = shapes.HEADER.index("raw-redis")
    assert float(rows[small.name][limit]) > 0
    assert rows["chord"][limit] == "-"
    assert rows[small.name][shapes.HEADER.index("celery / raw")].endswith("x")

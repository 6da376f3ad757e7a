"""What a group of children without preset ids pushes to Redis, turbogroup
vs Celery 5.7.0: turbogroup's plain-signature path (one template per kind
of child, results kept as ids) must send Celery's messages, ids aside, and
hand back results whose ids are the messages', in group order.
"""

from __future__ import annotations

import json

import pytest
from celery.canvas import group as celery_group

from tests.integration.celery_wire import dispatch, drain, normalized_plain
from tests.integration.group_cases import PLAIN_CASES
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("case", list(PLAIN_CASES))
def test_plain_children_push_what_celery_pushes(wire_env, case):
    app, tasks, queues, client = wire_env
    build, options = PLAIN_CASES[case]
    drain(client, queues)
    dispatch(celery_group, build, app, tasks, options)
    theirs = drain(client, queues)
    result = build(turbo_group, tasks).apply_async(**{"task_id": "group-id", **options})
    ours = drain(client, queues)
    assert type(result._results).__name__ == "LazyResults", "the plain path was not taken"
    assert theirs, "Celery pushed nothing: the case is broken"
    assert sorted(ours) == sorted(theirs)
    sent_ids = []
    for key in theirs:
        want = [normalized_plain(m) for m in theirs[key]]
        got = [normalized_plain(m) for m in ours[key]]
        assert got == want, key
        sent_ids += [json.loads(m)["headers"]["id"] for m in ours[key]]
    # the result's children are the messages' ids, in group order
    ids = [r.id for r in result.results]
    assert sorted(ids) == sorted(sent_ids)
    indexes = {
        json.loads(m)["headers"]["id"]: json.loads(m)["headers"]["group_index"]
        for v in ours.values()
        for m in v
    }
    assert [indexes[i] for i in ids] == list(range(len(ids)))

"""A chain member whose tasks belong to another app: Celery's
``_chain.run`` drops the group's producer, so that app publishes the
chain's first task, on its own broker connection, when the group reaches
it. turbogroup must not put it into the group's batch (the group's
broker)."""

from __future__ import annotations

import json
import uuid

import pytest
import redis
from celery import Celery, chain
from celery.canvas import group as celery_group

from tests.conftest import REDIS_BROKER_DB, kombu_list_key
from tests.integration.celery_wire import delete_matching, drain
from turbogroup import group as turbo_group

pytestmark = pytest.mark.redis

OTHER_DB = 13


@pytest.fixture
def other_app(redis_url):
    """An app on another Redis database, its own queue, one task."""
    queue = f"tg-otherapp-{uuid.uuid4().hex[:10]}"
    app = Celery("tg_otherapp", set_as_current=False)
    app.conf.update(broker_url=f"{redis_url}/{OTHER_DB}", task_default_queue=queue)

    @app.task(name="tg_otherapp.mul", shared=False)
    def mul(x, y=1):
        return x * y

    client = redis.Redis.from_url(f"{redis_url}/{OTHER_DB}")
    yield app, mul, queue, client
    # Its queue on the group's broker too: where the message went by mistake.
    for db_client in (client, redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")):
        delete_matching(db_client, f"*{queue}*")
        db_client.close()
    app.close()


def landed(client, queues):
    """(task name, task id) per destination list, oldest first."""
    return {
        key: [(h["task"], h["id"]) for h in (json.loads(m)["headers"] for m in messages)]
        for key, messages in drain(client, queues).items()
    }


def names(sent):
    return tuple({key: [name for name, _ in found] for key, found in s.items()} for s in sent)


@pytest.mark.parametrize("options", [{}, {"priority": 3}], ids=["plain path", "general path"])
def test_the_other_app_publishes_the_chain_as_in_celery(wire_env, other_app, options):
    app, tasks, queues, client = wire_env
    other, mul, other_queue, other_client = other_app
    add = tasks["add"]
    everywhere = [*queues, other_queue]

    def build(g):
        members = chain(mul.s(2, 3), mul.s(4))
        if options:
            members = members.set(**options)
        return g([add.s(1, 1), members, add.s(2, 2)], app=app)

    def sent():
        return landed(client, everywhere), landed(other_client, everywhere)

    sent()
    build(celery_group).apply_async()
    theirs = sent()
    result = build(turbo_group).apply_async()
    ours = sent()
    assert names(theirs) == (
        {kombu_list_key(queues[0], 0): ["tg_groupmsg.add", "tg_groupmsg.add"]},
        {
            kombu_list_key(other_queue, 0) if not options else kombu_list_key(other_queue, 3): [
                "tg_otherapp.mul"
            ]
        },
    )
    assert names(ours) == names(theirs)
    if not options:  # the other children took the plain path
        assert type(result._results).__name__ == "LazyResults"
    # the chain's result is its last step's, whose parent is the task sent
    [[(_, first_id)]] = ours[1].values()
    assert result.results[1].parent.id == first_id

"""What the wire-level comparisons with Celery share: an app whose clock is
frozen, its tasks and queues (the ``wire_env`` fixture), and what Redis
received, with what differs by chance (delivery tags, random ids)
normalized away."""

from __future__ import annotations

import base64
import datetime
import enum
import json
import re
import uuid

import redis
from celery import Celery

from tests.conftest import REDIS_BACKEND_DB, REDIS_BROKER_DB, kombu_list_key

FIXED_NOW = datetime.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
STEPS = (0, 3, 6, 9)


class Level(enum.IntEnum):
    HIGH = 1


def wire_env(redis_url):
    """An app on its own queues and backend keys, its tasks, its queues and a
    Redis client of the broker (the ``wire_env`` fixture)."""
    queue = f"tg-groupmsg-{uuid.uuid4().hex[:10]}"
    other = f"{queue}-other"
    app = Celery("tg_groupmsg", set_as_current=False)
    app.conf.update(
        broker_url=f"{redis_url}/{REDIS_BROKER_DB}",
        # chords need a backend; its keys share the queue's unique prefix
        result_backend=f"{redis_url}/{REDIS_BACKEND_DB}",
        result_backend_transport_options={"global_keyprefix": f"{queue}:"},
        task_default_queue=queue,
        task_routes={"tg_groupmsg.routed": {"queue": other}},
    )
    app.now = lambda: FIXED_NOW

    @app.task(name="tg_groupmsg.add", shared=False)
    def add(x, y=0):
        return x + y

    @app.task(name="tg_groupmsg.routed", shared=False)
    def routed(x):
        return x

    @app.task(name="tg_groupmsg.tsum", shared=False)
    def tsum(values):
        return sum(values)

    class OwnApplyAsync(app.Task):
        def apply_async(self, *args, **kwargs):  # not Celery's: Celery publishes it
            return super().apply_async(*args, **kwargs)

    @app.task(name="tg_groupmsg.own", shared=False, base=OwnApplyAsync)
    def own(x):
        return x

    client = redis.Redis.from_url(f"{redis_url}/{REDIS_BROKER_DB}")
    tasks = {"add": add, "routed": routed, "tsum": tsum, "own": own}
    yield app, tasks, [queue, other], client
    for q in (queue, other):
        delete_matching(client, f"*{q}*")
    client.close()
    backend_client = redis.Redis.from_url(f"{redis_url}/{REDIS_BACKEND_DB}")
    delete_matching(backend_client, f"{queue}:*")
    backend_client.close()
    app.close()


def delete_matching(client, pattern):
    """Deletes this test's keys (never anything else in the database)."""
    keys = list(client.scan_iter(match=pattern))
    if keys:
        client.delete(*keys)


def drain(client, queues):
    """Every message pushed, oldest first, per destination list."""
    out = {}
    for q in queues:
        for p in STEPS:
            key = kombu_list_key(q, p)
            raw = client.lrange(key, 0, -1)
            client.delete(key)
            if raw:
                out[key] = list(reversed(raw))
    return out


def first_difference(a, b):
    i = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
    return a[max(i - 60, 0) : i + 60], b[max(i - 60, 0) : i + 60]


def normalized(raw):
    envelope = json.loads(raw)
    tag = envelope["properties"]["delivery_tag"]
    return raw.replace(tag.encode(), b"<tag>")


def dispatch(impl, build, app, tasks, options):
    canvas = build(impl, tasks)
    canvas.apply_async(**{"task_id": "group-id", **options})


def normalized_plain(raw):
    envelope = json.loads(raw)
    own_id = envelope["headers"]["id"]
    return normalized(raw).replace(own_id.encode(), b"<id>")


UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical(messages, results):
    """The messages (envelope and decoded body) and the results' ids and
    parents, each uuid replaced by its order of first appearance: equal for
    two dispatches whose messages and results are alike but for random ids."""
    seen: dict[bytes, bytes] = {}

    def placeholder(match):
        return seen.setdefault(match.group(0), b"<%d>" % len(seen))

    out = []
    for raw in messages:
        envelope = json.loads(raw)
        body = base64.b64decode(envelope.pop("body"))
        envelope["properties"].pop("delivery_tag")
        text = json.dumps(envelope).encode() + b" " + body
        out.append(UUID.sub(placeholder, text))
    chains = []
    for result in results:
        ids = []
        while result is not None:
            ids.append(UUID.sub(placeholder, result.id.encode()))
            result = result.parent
        chains.append(ids)
    return out, chains

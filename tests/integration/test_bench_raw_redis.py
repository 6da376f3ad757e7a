"""The bench's Redis limit (``raw-redis``) pushes what Celery pushes: the
same envelope, field for field and byte for byte but for ids and arguments,
so its time per message is the broker's limit for Celery's messages."""

from __future__ import annotations

import json
import re

import pytest
import redis
from celery.canvas import group

from turbogroup.__main__ import main
from turbogroup.benchkit.raw_redis import NAME, RawRedisPeer
from turbogroup.benchkit.transports import TASK_NAME, Transport

pytestmark = pytest.mark.redis
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _without_ids(raw: bytes) -> bytes:
    envelope = json.loads(raw)
    envelope.pop("body")  # the arguments differ, base64-encoded
    return UUID.sub(b"<id>", json.dumps(envelope).encode())


def test_raw_redis_pushes_celerys_envelopes(redis_url):
    transport = Transport("redis", f"{redis_url}/13", "tgtest-raw-redis")
    app = transport.make_app()
    peer = RawRedisPeer(transport, app)
    client = redis.Redis.from_url(f"{redis_url}/13")
    try:
        peer.purge()
        group([app.tasks[TASK_NAME].s(0, 0)], app=app).apply_async()
        (celerys,) = client.lrange(transport.queue, 0, -1)
        peer.purge()
        key, built = peer.build(2500)
        assert key == transport.queue
        assert len(built[0]) == len(celerys)
        assert _without_ids(built[0]) == _without_ids(celerys)
        peer.dispatch((key, built))
        assert peer.depth() == 2500
        # in the order Celery's group pushes them
        assert client.lrange(key, -1, -1) == [built[0]]
    finally:
        peer.close()
        client.close()
        transport.cleanup(app)
        app.close()


def test_bench_prints_the_redis_limit_beside_turbogroup(redis_url, capsys):
    argv = ["bench", "--sizes", "200", "--transports", "redis", "--rounds", "1", "--no-rss"]
    argv += ["--no-collect", "--plot", "", "--redis-url", f"{redis_url}/13"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (row,) = [r.split() for r in out.splitlines() if r.split()[:2] == [NAME, "redis"]]
    assert row[2] == "200" and row[-1] == "200", row  # queued on return

"""A Redis connection dropped while a batched collection reads its replies:
raised as Celery raises it, or retried by the connection's own retry
policy, and the pool recovers."""

from __future__ import annotations

import pytest
import redis
import redis.connection

from tests.integration.stored_results import both, store

pytestmark = pytest.mark.redis


class DropOnce:
    """Closes the connection under the first reply read after the batched
    MGETs are written, as a broken link would."""

    def __init__(self, monkeypatch):
        self.dropped = 0
        original = redis.connection.AbstractConnection.read_response

        def read_response(connection, *a, **k):
            if not self.dropped:
                self.dropped += 1
                connection.disconnect()
                raise redis.ConnectionError("dropped by the test")
            return original(connection, *a, **k)

        monkeypatch.setattr(redis.connection.AbstractConnection, "read_response", read_response)


def test_a_dropped_connection_mid_read_raises_like_celery_then_reads_again(
    backend_app, monkeypatch
) -> None:
    ids = store(backend_app, list(range(2500)))
    ours, _ = both(backend_app, ids)
    drop = DropOnce(monkeypatch)
    with pytest.raises(redis.ConnectionError, match="dropped by the test"):
        ours.get(timeout=10)
    assert drop.dropped == 1
    assert ours.get(timeout=10) == list(range(2500))  # the pool recovers


def test_a_dropped_connection_is_retried_by_the_connection_retry_policy(
    backend_app, monkeypatch
) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    ids = store(backend_app, list(range(2500)))
    ours, _ = both(backend_app, ids)
    pool = backend_app.backend.client.connection_pool
    connection = pool.get_connection()
    pool.release(connection)
    monkeypatch.setattr(connection, "retry", Retry(NoBackoff(), 1))
    drop = DropOnce(monkeypatch)
    assert ours.get(timeout=10) == list(range(2500))
    assert drop.dropped == 1

"""Optional dependencies: Celery runs without redis-py, and so must we.

Without it these names are classes nothing is an instance of, so every
``isinstance`` check sends the caller down Celery's own path.
"""

from __future__ import annotations

try:
    from celery.backends.redis import RedisBackend
    from kombu.transport.redis import Channel as RedisChannel
except ImportError:  # redis-py is not installed

    class RedisBackend:  # type: ignore[no-redef]
        """Stands in for celery.backends.redis.RedisBackend."""

    class RedisChannel:  # type: ignore[no-redef]
        """Stands in for kombu.transport.redis.Channel."""


__all__ = ["RedisBackend", "RedisChannel"]

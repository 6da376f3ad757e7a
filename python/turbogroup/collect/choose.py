"""Which collector reads a set of results in bulk, if any."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from turbogroup._compat import RedisBackend
from turbogroup.collect.collector import Collector
from turbogroup.collect.redis import RedisCollector
from turbogroup.collect.redis import reads_like_celery as redis_reads_like_celery
from turbogroup.collect.tree import shared_backend


def collector_for(results: Sequence[Any]) -> Collector | None:
    """A collector over ``results`` when they all share a backend whose
    reads Celery's own code does and turbogroup batches (Redis, or the
    database backend); None where Celery's per-result code must run."""
    backend = shared_backend(results)
    if isinstance(backend, RedisBackend):
        return RedisCollector(backend, results) if redis_reads_like_celery(type(backend)) else None
    # Celery's database backend imports SQLAlchemy: if the module is not
    # loaded, no backend can be one of its.
    database_backend = sys.modules.get("celery.backends.database")
    if database_backend is not None and isinstance(backend, database_backend.DatabaseBackend):
        from turbogroup.collect.database import DatabaseCollector, reads_like_celery

        return DatabaseCollector(backend, results) if reads_like_celery(backend) else None
    return None
